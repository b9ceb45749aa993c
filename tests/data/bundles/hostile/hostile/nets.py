"""A generator whose constructor attacks the service from inside the rank that builds it.

Each try is made for real; its outcome is `ok` or the exception's type. The results go to
the agent as a job warning (the one legitimate door), then the agent is sent a malformed
message, which gets the attempt cut off: so the job's error is the agent's violation, and
the warning is where the test reads what happened to each try.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from worker.channel.link import SOCKET_VARIABLE, AgentLink

# Variables of the service's processes that hold (or lead to) its secrets.
SECRET_VARIABLES = (
    b"GANFORGE_DATABASE_URL=",
    b"GANFORGE_BROKER_URL=",
    b"GANFORGE_STORAGE_URL=",
    b"AWS_SECRET_ACCESS_KEY=",
)
# A header length far past any bound the agent may have (4 bytes, big-endian).
OVERSIZED_HEADER = 2 << 30
# Ancestors walked at most (the chain ends at pid 1 long before).
MAX_ANCESTORS = 32


def outcome(action: Callable[[], Any]) -> str:
    try:
        action()
    except Exception as error:
        return type(error).__name__
    return "ok"


def environ_of(pid: int | str) -> str:
    """`SECRET` when the process's environment could be read and holds a service secret,
    `clean` when it could be read without one, else why it could not be read."""
    try:
        variables = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError as error:
        return type(error).__name__
    leaked = any(v.startswith(SECRET_VARIABLES) for v in variables)
    return "SECRET" if leaked else "clean"


def ancestors() -> list[int]:
    """This process's parent, its parent's parent, ... up to pid 1: the launcher, the
    supervising worker, and whatever started the worker."""
    found: list[int] = []
    pid = os.getppid()
    while pid > 0 and len(found) < MAX_ANCESTORS:
        found.append(pid)
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            break
        parent = next(line for line in status.splitlines() if line.startswith("PPid:"))
        pid = int(parent.split()[1])
    return found


def leaking_processes() -> tuple[int, list[int]]:
    """How many processes' environments could be read at all, and those holding a secret."""
    outcomes = {p.name: environ_of(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()}
    readable = sum(1 for seen in outcomes.values() if seen in ("clean", "SECRET"))
    return readable, sorted(int(pid) for pid, seen in outcomes.items() if seen == "SECRET")


def attack(home: Path, victim: str, tmp_probe: Path, link: AgentLink) -> dict[str, Any]:
    readable, leaks = leaking_processes()
    secret_names = ("GANFORGE_DATABASE", "GANFORGE_BROKER", "GANFORGE_STORAGE", "AWS_")
    return {
        "env": sorted(name for name in os.environ if name.startswith(secret_names)),
        "ancestors": {str(pid): environ_of(pid) for pid in ancestors()},
        "readable_environs": readable,
        "leaks": leaks,
        "read_home_secret": outcome(lambda: (home / "secret.txt").read_bytes()),
        "read_worker_log": outcome(lambda: (home / "logs" / "worker.log").read_bytes()),
        "list_home": outcome(lambda: os.listdir(home)),
        "write_home": outcome(lambda: (home / "planted.txt").write_text("x")),
        "write_tmp": outcome(lambda: tmp_probe.write_text("x")),
        "write_own_folder": outcome(lambda: (Path.home() / "mine.txt").write_text("x")),
        "their_checkpoint": outcome(lambda: link.call("checkpoint", job_id=victim, step=None)),
        "their_log": outcome(
            lambda: link.call("artifact", job_id=victim, name="log.txt", field="spec")
        ),
    }


def send_oversized_header() -> bytes:
    """A raw message to the agent whose header claims 2 GiB; what the agent answers (its
    closing the connection reads as b"")."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.connect(os.environ[SOCKET_VARIABLE])
        raw.sendall(struct.pack(">I", OVERSIZED_HEADER) + b"{")
        raw.settimeout(30)
        return raw.recv(64)


class Generator(nn.Module):
    def __init__(
        self,
        *,
        latent_dim: int,
        data_shape: tuple[int, ...],
        home: str,
        victim: str,
        tmp_probe: str,
    ) -> None:
        super().__init__()
        link = AgentLink.from_environment()
        results = attack(Path(home), victim, Path(tmp_probe), link)
        link.call("warning", step=0, message=json.dumps(results, separators=(",", ":")))
        answer = send_oversized_header()
        raise RuntimeError(f"the agent answered {answer!r} to a 2 GiB header")

    def forward(self, z: Tensor) -> Tensor:  # never reached: the constructor raises
        return z


class Critic(nn.Module):
    def __init__(self, *, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.score = nn.Linear(input_shape[0], 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.score(x).flatten(0)
