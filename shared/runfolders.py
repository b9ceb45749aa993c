"""Scratch space a service process owns, found again and removed once the process is gone.

A process killed with SIGKILL runs no clean-up: what it kept in the system's temporary folder
(an upload of up to 2 GiB being checked, prometheus_client's metrics files) stayed there for
good. So each process keeps such things under `$GANFORGE_HOME/run/<service>/<pid>/`, and a
service that starts (and a master that sees a child die) removes the folders of pids that no
longer run: nothing outlives its owner past the next start. A pid reused by an unrelated
process keeps its folder until that one is gone too, so a live owner's folder is never
removed; the starting process's own pid can only name a predecessor's folder (a container
starts its processes at the same pids each time), so that one goes too. Pids are this host's:
`$GANFORGE_HOME` is one machine's (as the worker's work folders are one node's).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from shared.config import Settings

log = logging.getLogger(__name__)

RUN_FOLDER = "run"
# The API's processes (gunicorn's master and workers, api/gunicorn_conf.py).
API_SERVICE = "api"


def service_folder(settings: Settings, service: str) -> Path:
    """`$GANFORGE_HOME/run/<service>`: the folders of that service's processes."""
    return settings.home / RUN_FOLDER / service


def own_folder(settings: Settings, service: str, pid: int | None = None) -> Path:
    """The folder of process `pid` (this one by default) of `service`, created, private."""
    folder = service_folder(settings, service) / str(pid or os.getpid())
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def remove_own(settings: Settings, service: str, pid: int | None = None) -> None:
    """Remove the folder of process `pid` (this one by default): at a clean stop, or when
    a master learns that a child of its died."""
    shutil.rmtree(service_folder(settings, service) / str(pid or os.getpid()), ignore_errors=True)


def remove_leftovers(settings: Settings, service: str) -> list[Path]:
    """At a process's start: remove the folders its service's dead processes left (and the
    one under this process's own pid, a predecessor's); returns what was removed."""
    folder = service_folder(settings, service)
    removed = []
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        if entry.name.isdigit() and (
            int(entry.name) == os.getpid() or not is_running(int(entry.name))
        ):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    if removed:
        log.info("%s: removed %d folder(s) left by processes that are gone", service, len(removed))
    return removed


def is_running(pid: int) -> bool:
    """Whether a process `pid` exists on this host (one of another user's counts too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
