"""The node agent's side of one job attempt: a Unix socket its processes talk through.

The supervisor (or the warm sampler's task) opens an `AttemptAgent` before it starts the
attempt's processes and closes it when they are gone. Each connection (a rank, the launcher)
is served by a thread of its own, one request at a time (operations.py). The agent holds
what the processes may not: the settings with the database URL, the store and its keys. It
cuts off a process that breaks the protocol or floods it, and records why (`violation`);
the supervisor then ends the attempt, which fails with that reason.

The attempt's folder holds the stop file and the launcher's output (the agent's), `job/`
(the processes' own work folder, the only place they write) and `inputs/` (data and uploads
the agent fetched for them: theirs to read, not to change). The socket lies in a short
folder of its own under the system's temporary folder (a Unix socket's path has at most 107
bytes; a work root may be deeper than that). Any local process can see a bound socket's path
(/proc/net/unix), so the agent admits a connection only from a process of the attempt's own
session (the launcher's process group, or the warm sampler that took the job), by the
kernel's word for the peer (SO_PEERCRED).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import struct
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.config import Settings
from shared.db import is_unreachable, session_scope
from shared.models import Job
from shared.storage import Storage, StorageError
from shared.storage.retrying import RetryingStorage
from worker.agent.operations import OPERATIONS, ProtocolViolation, Request
from worker.agent.shard_cache import ShardCache
from worker.artifacts import FencedError
from worker.channel.frames import (
    FrameError,
    read_header,
    read_payload,
    send_message,
)
from worker.channel.link import JobInputError
from worker.channel.sealed import HEADER_KEY as SEALED_KEY
from worker.channel.sealed import open_sealed
from worker.channel.ticket import JobTicket

log = logging.getLogger(__name__)

# A checkpoint or an artifact sent through the agent (GANFORGE_MAX_ARTIFACT_MB sets it).
DEFAULT_MAX_UPLOAD_BYTES = 8 << 30
# Requests a process may make in a burst, and per second after it: the reporter sends a
# handful a second at most (progress is throttled); a loop of thousands is a flood.
BURST_REQUESTS = 2000
REQUESTS_PER_SECOND = 200.0
# The operations whose payload may come as a sealed file (worker/channel/sealed.py): those
# that store it as it is.
SEALED_OPERATIONS = frozenset({"put", "put_batch", "cache_put"})
LISTEN_BACKLOG = 64
# Kinds whose job runs one rank per device (the others run one rank).
MULTI_RANK_KINDS = ("train", "script")
# How long a connection waits for the agent to learn which process session is the attempt's
# (the supervisor tells it the moment the launcher's Popen returns).
ADMIT_WAIT_S = 30.0
PEER_CREDENTIALS = struct.Struct("3i")  # SO_PEERCRED: pid, uid, gid


@dataclass(frozen=True)
class AttemptFolders:
    root: Path

    @property
    def stop(self) -> Path:
        return self.root / "stop"

    @property
    def output(self) -> Path:
        return self.root / "launcher.log"

    @property
    def job(self) -> Path:
        return self.root / "job"

    @property
    def inputs(self) -> Path:
        return self.root / "inputs"

    def create(self) -> None:
        """The agent's folders, readable by the job's processes, and theirs (made theirs, by
        the account they run as, when the sandbox is set up: worker/attempt_sandbox.py)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self.inputs.mkdir(mode=0o755, exist_ok=True)
        self.job.mkdir(mode=0o700, exist_ok=True)


class AttemptAgent:
    """Serves one attempt of one job on `folders.socket`."""

    def __init__(
        self,
        settings: Settings,
        store: Storage,
        job_id: str,
        attempt: int,
        folders: AttemptFolders,
        *,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    ) -> None:
        self.settings, self.job_id, self.attempt, self.folders = settings, job_id, attempt, folders
        base = store.store if isinstance(store, RetryingStorage) else store
        self.store_once = base  # one try: the live log upload, tried again a moment later
        # The job's log tells of the outages its writes waited through (as notes on replies).
        self.store = RetryingStorage(base, settings.storage_retry_s, self._note)
        # Whether the job runs a researcher's code (set by the supervisor with `bundles`).
        self.runs_user_code = False
        # The code bundles the job runs (id -> folder), fetched by the supervisor.
        self.bundles: dict[str, str] = {}
        self.max_upload_bytes = max_upload_bytes
        self.result: tuple[str, str] | None = None
        self.failures: dict[int, tuple[str, bool]] = {}
        self.violation: str | None = None
        # Storage retries waited through (told from whichever thread uploads), until a reply
        # to the process that keeps the job's log (its requests ask for notes) carries them.
        self._notes: list[str] = []
        self._server: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._rendezvous: tuple[str, int] | None = None
        self._rendezvous_lock = threading.Lock()  # held while node 0 is waited for
        self._session: int | None = None
        self._admitted = threading.Event()
        # The node's shard cache, as this attempt uses it: what it links stays pinned until
        # the agent closes; the job's log is told what each data step took from it.
        self.shards = ShardCache.for_node(settings, self.store, self._note)
        self._socket_folder = Path(tempfile.mkdtemp(prefix="ganforge-agent-"))
        self._socket_folder.chmod(0o711)  # the job's account may reach the socket, not list
        self.socket_path = self._socket_folder / "agent.sock"

    # -- lifetime -------------------------------------------------------------------------

    def admit(self, session: int) -> None:
        """Serve the processes of this session (the launcher's pid: it leads its session)."""
        self._session = session
        self._admitted.set()

    def start(self) -> None:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path = str(self.socket_path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        server.bind(path)
        os.chmod(path, 0o666)  # the job's account connects; the folder above guards it
        server.listen(LISTEN_BACKLOG)
        self._server = server
        threading.Thread(target=self._accept, name=f"agent-{self.job_id[:8]}", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            server, self._server = self._server, None
            connections = list(self._connections)
        if server is not None:
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
            server.close()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        shutil.rmtree(self._socket_folder, ignore_errors=True)
        self.shards.close()

    def __enter__(self) -> AttemptAgent:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- what operations use --------------------------------------------------------------

    def ticket(self) -> JobTicket:
        with session_scope(self.settings.database_url) as session:
            kind, spec, devices = session.execute(
                select(Job.kind, Job.spec, Job.devices).where(Job.id == self.job_id)
            ).one()
        return JobTicket(
            job_id=self.job_id,
            attempt=self.attempt,
            kind=kind,
            spec=spec,
            world_size=devices if kind in MULTI_RANK_KINDS else 1,
            torch_threads=self.settings.torch_threads or 0,
            progress_interval_s=self.settings.progress_interval_s,
            log_flush_s=self.settings.log_flush_s,
            data_roots=tuple(str(root) for root in self.settings.data_roots),
            work_folder=str(self.folders.job),
            inputs_folder=str(self.folders.inputs),
            stop_file=str(self.folders.stop),
            bundles=dict(self.bundles),
        )

    def store_for(self, patient: bool) -> Storage:
        return self.store if patient else self.store_once

    def check_same_owner(self, session: Session, job_id: str, field: str) -> None:
        """`job_id` is this job or another of its owner's: anything else reads as missing."""
        owners = dict(
            session.execute(
                select(Job.id, Job.owner_id).where(Job.id.in_([self.job_id, job_id]))
            ).all()
        )
        if job_id not in owners or owners[job_id] != owners.get(self.job_id):
            raise JobInputError(f"{field}: no job {job_id!r} among your jobs")

    def rendezvous(self, node_rank: int) -> tuple[str, int]:
        """Where a gang's ranks meet (see worker/agent/rendezvous.py)."""
        from worker.agent.rendezvous import meeting_point

        with self._rendezvous_lock:
            if self._rendezvous is None:
                self._rendezvous = meeting_point(
                    self.settings, self.job_id, self.attempt, node_rank
                )
            return self._rendezvous

    def record_result(self, status: str, error: str) -> None:
        with self._lock:
            self.result = (status, error)

    def record_failure(self, rank: int, message: str, lost: bool) -> None:
        with self._lock:
            self.failures.setdefault(rank, (message, lost))

    def first_failure(self) -> tuple[str, bool] | None:
        """The lowest rank's failure, and whether any rank saw the machinery fail."""
        with self._lock:
            if not self.failures:
                return None
            message = self.failures[min(self.failures)][0]
            return message, any(lost for _, lost in self.failures.values())

    # -- serving --------------------------------------------------------------------------

    def _note(self, line: str) -> None:
        with self._lock:
            self._notes.append(line)

    def _accept(self) -> None:
        while True:
            server = self._server
            if server is None:
                return
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with self._lock:
                self._connections.add(connection)
            threading.Thread(
                target=self._serve,
                args=(connection,),
                name=f"agent-{self.job_id[:8]}-c",
                daemon=True,
            ).start()

    def _serve(self, connection: socket.socket) -> None:
        bucket = _Bucket(BURST_REQUESTS, REQUESTS_PER_SECOND)
        try:
            if not self._is_of_the_attempt(connection):
                return
            while True:
                fds: list[int] = []  # descriptors passed with the header: taken or closed
                try:
                    header = read_header(connection, fds)
                    if not bucket.take():
                        raise ProtocolViolation(
                            f"more than {BURST_REQUESTS} requests at over "
                            f"{REQUESTS_PER_SECOND:.0f}/s"
                        )
                    op = header.pop("op", None)
                    operation = OPERATIONS.get(op) if isinstance(op, str) else None
                    if operation is None:
                        raise ProtocolViolation(f"no operation {str(op)[:40]!r}")
                    if (fds or SEALED_KEY in header) and op not in SEALED_OPERATIONS:
                        raise ProtocolViolation(f"a sealed payload with {op!r}")
                    passed, fds = fds, []
                    payload = self._payload(connection, header, passed)
                finally:
                    for fd in fds:
                        os.close(fd)
                reply, data = self._run(operation, Request(header, payload))
                del payload  # a sealed file's mapping goes with its last view
                send_message(connection, reply, data)
        except (FrameError, ProtocolViolation) as error:
            self._violated(
                f"{type(error).__name__ if isinstance(error, FrameError) else 'request'}: {error}"
            )
        except OSError:
            pass  # the process went away (between messages or mid-message): its exit says why
        finally:
            with self._lock:
                self._connections.discard(connection)
            connection.close()

    def _payload(
        self, connection: socket.socket, header: dict[str, Any], fds: list[int]
    ) -> bytes | memoryview:
        """The request's payload: its chunk frames, or the sealed file passed with the
        header (worker/channel/sealed.py), mapped, after which no chunk may follow."""
        if not fds and SEALED_KEY not in header:
            return read_payload(connection, self.max_upload_bytes)
        mapped = open_sealed(fds, header.pop(SEALED_KEY, None), self.max_upload_bytes)
        read_payload(connection, 0)
        return memoryview(mapped)

    def _run(self, operation: Any, request: Request) -> tuple[dict[str, Any], bytes]:
        wants_notes = bool(request.args.pop("notes", False))
        try:
            reply, data = operation(self, request)
            reply = {"ok": True, **reply}
        except ProtocolViolation:
            raise
        except JobInputError as error:
            reply, data = {"ok": False, "fault": "user", "error": str(error)}, b""
        except FencedError as error:
            reply, data = {"ok": False, "fault": "fenced", "error": str(error)}, b""
        except Exception as error:
            if not (
                isinstance(error, (StorageError, ConnectionError, TimeoutError))
                or is_unreachable(error)
            ):
                log.exception("job %s: the agent failed a request", self.job_id)
            reply = {
                "ok": False,
                "fault": "infrastructure",
                "error": f"{type(error).__name__}: {error}",
            }
            data = b""
        if wants_notes:
            with self._lock:
                notes, self._notes = self._notes, []
            if notes:
                reply["notes"] = notes
        return reply, data

    def _is_of_the_attempt(self, connection: socket.socket) -> bool:
        """Whether the peer is a process of the attempt's session; others are turned away
        (and logged: another job's process knocking is worth an operator's look)."""
        pid, uid, _ = PEER_CREDENTIALS.unpack(
            connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEER_CREDENTIALS.size)
        )
        if not self._admitted.wait(ADMIT_WAIT_S):
            return False
        try:
            session = os.getsid(pid)
        except OSError:
            return False
        if session == self._session:
            return True
        log.warning(
            "job %s attempt %d: turned away a connection from pid %d (uid %d, session %d)",
            self.job_id,
            self.attempt,
            pid,
            uid,
            session,
        )
        return False

    def _violated(self, reason: str) -> None:
        log.warning(
            "job %s attempt %d broke the agent protocol: %s", self.job_id, self.attempt, reason
        )
        with self._lock:
            if self.violation is None:
                self.violation = reason


class _Bucket:
    """A token bucket: `burst` requests at once, `rate` a second after that."""

    def __init__(self, burst: int, rate: float) -> None:
        self.burst, self.rate = burst, rate
        self.tokens, self.last = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
