"""A snapshot of this machine's processes, read from /proc (Linux): parent, process group,
resident memory and command line of each, so a test can find what a job left behind or weigh
a service's processes without a dependency (psutil is not in the venv)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
# Fields of /proc/<pid>/stat after the command name's closing parenthesis (proc(5), 0-based
# from the state, which is field 3).
_STATE, _PPID, _PGRP, _RSS_PAGES = 0, 1, 2, 21


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    pgid: int
    rss_bytes: int
    cmdline: bytes  # NUL-separated arguments, as the kernel keeps them


def snapshot() -> dict[int, Process]:
    """Every live (not zombie) process now, by pid; one that exits while read is left out."""
    table: dict[int, Process] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        if fields[_STATE] == "Z":
            continue
        pid = int(entry.name)
        table[pid] = Process(
            pid=pid,
            ppid=int(fields[_PPID]),
            pgid=int(fields[_PGRP]),
            rss_bytes=int(fields[_RSS_PAGES]) * PAGE_BYTES,
            cmdline=cmdline,
        )
    return table


def descendants(table: dict[int, Process], roots: Iterable[int]) -> set[int]:
    """Every process below `roots` (children in their own sessions included), roots excluded."""
    found: set[int] = set()
    frontier = set(roots)
    while frontier:
        frontier = {p.pid for p in table.values() if p.ppid in frontier} - found
        found |= frontier
    return found


def environment(pid: int) -> bytes:
    """The process's environment as it started (NUL-separated); empty if unreadable."""
    try:
        return (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return b""
