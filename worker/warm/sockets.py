"""Where a node's warm samplers listen (the worker's side: the samplers are told their path)."""

from __future__ import annotations

from pathlib import Path

from shared.config import Settings
from shared.runfolders import service_folder
from worker.node import node_name

# The longest path a Unix socket can be bound at (108 bytes with the closing NUL on Linux,
# 104 on macOS): a longer GANFORGE_HOME leaves the node without warm samplers.
SOCKET_PATH_MAX = 103


def socket_folder(settings: Settings) -> Path:
    """Where this node's samplers listen: its worker's own folder under $GANFORGE_HOME/run
    (one worker per node, so a socket there when the worker starts is a predecessor's), not
    the system's temporary folder, where every killed worker's sockets stayed."""
    return service_folder(settings, f"worker-{node_name(settings)}")


def socket_path(settings: Settings, device_index: int) -> Path:
    """Where the sampler of `device_index` on this node listens."""
    return socket_folder(settings) / f"warm-{device_index}.sock"
