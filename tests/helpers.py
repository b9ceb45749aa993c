"""Small builders the test suites share (factories over hand-built rows)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from shared.config import Settings
from shared.db import session_scope
from shared.users import create_token, create_user

# The first 4,000 digits of the official MNIST test set, shipped in the repository (see its
# README for the source, licence and checksums).
MNIST_DIR = Path(__file__).resolve().parent / "data" / "mnist"

RING_SPEC: dict[str, Any] = {
    "model": {"family": "mlp", "width": 32},
    "latent": {"dim": 4},
    "data": {"source": "toy:ring8"},
    "train": {"steps": 40, "batch_size": 64, "lr": 1e-3, "seed": 1},
    "checkpoint_every": 20,
    "sample_every": 20,
}


def user_token(settings: Settings, name: str, *, admin: bool = False) -> str:
    """Create a user and return a bearer token for them."""
    with session_scope(settings.database_url) as session:
        create_user(session, name, is_admin=admin)
        return create_token(session, name, label="test")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def train_request(name: str = "ring", **spec_changes: Any) -> dict[str, Any]:
    return {"kind": "train", "name": name, "spec": {**RING_SPEC, **spec_changes}}


def with_steps(spec: dict[str, Any], steps: int, **train: Any) -> dict[str, Any]:
    """`spec` with `train` replaced by {"steps": steps, **train}, and the cadences it gives
    brought within the run (the API refuses a checkpoint_every or sample_every > steps)."""
    shorter: dict[str, Any] = {**spec, "train": {"steps": steps, **train}}
    for cadence in ("checkpoint_every", "sample_every", "eval_every"):
        if cadence in spec:
            shorter[cadence] = min(spec[cadence], steps)
    return shorter


def tensorboard_events(event_file: bytes) -> list[Any]:
    """The Event protobufs of a TensorBoard event file, read record by record (TFRecord
    framing: an 8-byte length, its 4-byte CRC, the Event bytes, their 4-byte CRC)."""
    from tensorboardX.proto.event_pb2 import Event

    events, offset = [], 0
    while offset < len(event_file):
        length = int.from_bytes(event_file[offset : offset + 8], "little")
        events.append(Event.FromString(event_file[offset + 12 : offset + 12 + length]))
        offset += 12 + length + 4
    return events


def tensorboard_scalars(event_file: bytes) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] of the scalars in a TensorBoard event file."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    for event in tensorboard_events(event_file):
        for value in event.summary.value:
            if value.HasField("simple_value"):
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def tensorboard_image_tags(event_file: bytes) -> set[str]:
    """The tags of the images in a TensorBoard event file."""
    return {
        value.tag
        for event in tensorboard_events(event_file)
        for value in event.summary.value
        if value.HasField("image")
    }


# A test adds lines to the run's closing summary (printed by tests/conftest.py) as a user
# property named SUMMARY_SECTION + title: properties travel in the test's reports, so the
# summary is whole when the tests ran in xdist workers, which share no memory with the
# process that prints.
SUMMARY_SECTION = "summary: "


def add_summary_lines(node: pytest.Item, title: str, lines: list[str]) -> None:
    """Print `lines` under `title` at the end of the run (the last call for a test wins)."""
    node.user_properties.append((SUMMARY_SECTION + title, list(lines)))


@contextlib.contextmanager
def local_http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """A threaded HTTP server of `handler` on 127.0.0.1 (a webhook receiver); yields its port,
    shut down on leaving."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join(timeout=10)
