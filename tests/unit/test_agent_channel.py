"""The node agent's channel as a job process meets it: what it hands over, what it refuses
(and as whose fault), and the process it cuts off for breaking the protocol or flooding it."""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.config import Settings
from shared.db import session_scope
from shared.models import Job
from shared.storage import Storage, StorageUnavailableError, keys, open_storage
from tests.attempts import attempt_of
from tests.unit.job_factories import S, move, running_job
from worker.agent import server
from worker.channel import link as link_module
from worker.channel import sealed
from worker.channel.frames import send_message
from worker.channel.link import AgentLink, AttemptFencedError, JobInputError
from worker.channel.sealed import sealed_file


def test_artifacts_go_under_the_jobs_own_names_for_its_own_attempt_only(
    settings: Settings, tmp_path: Path
) -> None:
    job_id, store = running_job(settings), open_storage(settings)
    with attempt_of(settings, store, job_id, 1, tmp_path) as attempt:
        attempt.link.call(
            "put", b"weights", name="checkpoints/step-000001.pt", kind="checkpoint", step=1
        )
        assert store.get(keys.artifact_key(job_id, "checkpoints/step-000001.pt")) == b"weights"
        move(settings, job_id, S.RUNNING, S.LOST, S.QUEUED, S.SCHEDULED, S.RUNNING)  # attempt 2
        with pytest.raises(AttemptFencedError, match="superseded"):
            attempt.link.call("put", b"late", name="log.txt", kind="log")
        assert attempt.agent.violation is None  # fenced is not a protocol fault


def test_another_owners_job_reads_as_missing(settings: Settings, tmp_path: Path) -> None:
    mine, theirs = running_job(settings, "alice"), running_job(settings, "bob")
    with attempt_of(settings, open_storage(settings), mine, 1, tmp_path) as attempt:
        with pytest.raises(JobInputError, match=r"^spec\.job_id: no job"):
            attempt.link.call("checkpoint", job_id=theirs, step=None)
        with pytest.raises(JobInputError, match=r"^spec\.latents\.job_id: no job"):
            attempt.link.call("artifact", job_id=theirs, name="log.txt", field="spec.latents")


def test_a_warning_on_the_job_names_the_steps_it_began_and_ended_at(
    settings: Settings, tmp_path: Path
) -> None:
    job_id = running_job(settings)
    with attempt_of(settings, open_storage(settings), job_id, 1, tmp_path) as attempt:
        reporter = attempt.reporter()
        reporter.report_evaluation(750, {"modes_covered": 1}, None)
        reporter.warn("1/8 modes covered", stop=False, kind="modes-coverage")
        reporter.warn("a warning of another kind", stop=False, kind="spread")
        reporter.report_evaluation(1000, {"modes_covered": 8}, None)
        reporter.end_warning("modes-coverage", "8/8 modes covered at step 1000")
        reporter.end_warning("modes-kl", "none of this kind is open: nothing changes")
        reporter.report_evaluation(1500, {"modes_covered": 2}, None)
        reporter.warn("2/8 modes covered", stop=False, kind="modes-coverage")
        # A kind still open (as after a resumed attempt warns again) is not repeated.
        reporter.warn("2/8 modes covered, again", stop=False, kind="modes-coverage")
        reporter.close()
    with session_scope(settings.database_url) as session:
        warnings = session.get(Job, job_id).warnings
    spans = [(w["kind"], w["step"], w["ended_step"], w["message"]) for w in warnings]
    assert spans == [
        ("modes-coverage", 750, 1000, "1/8 modes covered"),
        ("spread", 750, None, "a warning of another kind"),
        ("modes-coverage", 1500, None, "2/8 modes covered"),
    ]
    assert warnings[0]["ended_at"] >= warnings[0]["at"] and warnings[1]["ended_at"] is None


@pytest.mark.parametrize(
    ("request_header", "payload", "reason"),
    [
        ({"op": "put", "name": "../../etc/passwd", "kind": "log"}, b"x", "not an artifact name"),
        ({"op": "put", "name": "log.txt", "kind": "virus"}, b"x", "not an artifact kind"),
        ({"op": "read_any_key", "key": "jobs/"}, b"", "no operation 'read_any_key'"),
        ({"op": "put", "name": "log.txt", "kind": "log"}, b"x" * 2048, "a payload of more than"),
    ],
)
def test_a_request_outside_the_protocol_cuts_the_process_off(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request_header: dict[str, object],
    payload: bytes,
    reason: str,
) -> None:
    job_id = running_job(settings)
    with attempt_of(settings, open_storage(settings), job_id, 1, tmp_path) as attempt:
        attempt.agent.max_upload_bytes = 1024
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(str(attempt.agent.socket_path))
        assert _cut_off(connection, lambda: send_message(connection, request_header, payload))
        assert reason in (attempt.agent.violation or "")


def test_an_oversized_header_frame_is_refused_before_it_is_read(
    settings: Settings, tmp_path: Path
) -> None:
    job_id = running_job(settings)
    with attempt_of(settings, open_storage(settings), job_id, 1, tmp_path) as attempt:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(str(attempt.agent.socket_path))
        assert _cut_off(connection, lambda: connection.sendall(struct.pack(">I", 1 << 31)))
        assert "header frame of 2,147,483,648 bytes" in (attempt.agent.violation or "")


def test_a_large_payload_goes_as_a_sealed_file_and_is_stored_as_sent(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[int] = []
    monkeypatch.setattr(
        link_module, "sealed_file", lambda data: sent.append(len(data)) or sealed_file(data)
    )
    job_id, store = running_job(settings), open_storage(settings)
    data = os.urandom(sealed.FD_PAYLOAD_BYTES + 12345)
    with attempt_of(settings, store, job_id, 1, tmp_path) as attempt:
        attempt.link.call("put", data, name="checkpoints/step-000002.pt", kind="checkpoint", step=2)
        batch = [
            {"name": "samples/step-000002.png", "kind": "samples", "step": 2, "size": len(data)}
        ]
        attempt.link.call("put_batch", data, items=batch)
        assert attempt.agent.violation is None
    assert sent == [len(data), len(data)]
    for name in ("checkpoints/step-000002.pt", "samples/step-000002.png"):
        assert store.get(keys.artifact_key(job_id, name)) == data


def _memfd(data: bytes, seals: int) -> int:
    fd = os.memfd_create("test", os.MFD_ALLOW_SEALING)
    os.write(fd, data)
    if seals:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    return fd


@pytest.mark.parametrize(
    ("make_fd", "header", "reason"),
    [
        (lambda: _memfd(b"x" * 64, 0), {"op": "put"}, "not sealed against change"),
        (
            lambda: _memfd(b"x" * 64, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW),
            {"op": "put"},
            "not sealed against change",
        ),
        (
            lambda: _memfd(b"x" * 64, sealed.SEALS),
            {"op": "put", "payload_fd": 65},
            "not a file of 65",
        ),
        (lambda: _memfd(b"x" * 4096, sealed.SEALS), {"op": "put"}, "a size from 1 to 1,024"),
        (lambda: os.pipe()[0], {"op": "put"}, "not a file of"),
        (lambda: _memfd(b"x" * 64, sealed.SEALS), {"op": "cache_get"}, "a sealed payload with"),
    ],
)
def test_a_passed_descriptor_that_is_not_a_sealed_payload_cuts_the_process_off(
    settings: Settings,
    tmp_path: Path,
    make_fd: Callable[[], int],
    header: dict[str, object],
    reason: str,
) -> None:
    """A rank could pass a pipe that never ends, a file it keeps writing to while the agent
    hashes and uploads it, or one larger than it says: each breaks the protocol."""
    job_id = running_job(settings)
    with attempt_of(settings, open_storage(settings), job_id, 1, tmp_path) as attempt:
        attempt.agent.max_upload_bytes = 1024
        fd = make_fd()
        size = header.get("payload_fd", os.fstat(fd).st_size or 64)
        request = {"name": "log.txt", "kind": "log", **header, "payload_fd": size}
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(str(attempt.agent.socket_path))
        assert _cut_off(connection, lambda: send_message(connection, request, b"", fd=fd))
        assert reason in (attempt.agent.violation or "")
        os.close(fd)


def _cut_off(connection: socket.socket, send: Callable[[], None]) -> bool:
    """Whether the agent closed the connection without a reply (a send may already fail)."""
    try:
        send()
        return connection.recv(1) == b""
    except (BrokenPipeError, ConnectionResetError):
        return True


def test_a_flood_of_requests_is_cut_off(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server, "BURST_REQUESTS", 20)
    monkeypatch.setattr(server, "REQUESTS_PER_SECOND", 1.0)
    job_id = running_job(settings)
    with attempt_of(settings, open_storage(settings), job_id, 1, tmp_path) as attempt:
        link = AgentLink(str(attempt.agent.socket_path))
        with pytest.raises(ConnectionError):
            for _ in range(100):
                link.call("cache_get", name="nothing-here")
        assert "more than 20 requests" in (attempt.agent.violation or "")


def test_a_process_of_another_session_is_turned_away(settings: Settings, tmp_path: Path) -> None:
    """Any local process can find the socket's path; only the attempt's own get an answer."""
    job_id = running_job(settings)
    with attempt_of(settings, open_storage(settings), job_id, 1, tmp_path) as attempt:
        knock = (
            "import sys\n"
            "from worker.channel.link import AgentLink\n"
            "try:\n"
            "    AgentLink(sys.argv[1]).call('ticket')\n"
            "except ConnectionError as error:\n"
            "    print('refused', error)\n"
        )
        stranger = subprocess.run(
            [sys.executable, "-c", knock, str(attempt.agent.socket_path)],
            capture_output=True,
            text=True,
            start_new_session=True,  # a session of its own, as another job's rank
            timeout=60,
        )
        assert stranger.stdout.startswith("refused"), stranger.stdout + stranger.stderr
        assert attempt.link.call("ticket")[0]["ticket"]["job_id"] == job_id  # ours still served


class _FlakyStore:
    """A store whose first `failures` writes find it unreachable."""

    def __init__(self, store: Storage, failures: int) -> None:
        self.store, self.failures = store, failures

    def put(self, key: str, data: bytes) -> object:
        if self.failures > 0:
            self.failures -= 1
            raise StorageUnavailableError(f"cannot reach the store for {key}")
        return self.store.put(key, data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


def test_the_outages_the_agent_waited_through_reach_the_log_keeping_process(
    settings: Settings, tmp_path: Path
) -> None:
    """Batched uploads retry in threads of their own; their notes still reach rank 0."""
    job_id, store = running_job(settings), _FlakyStore(open_storage(settings), 1)
    with attempt_of(settings, store, job_id, 1, tmp_path) as attempt:  # type: ignore[arg-type]
        heard: list[str] = []
        attempt.link.on_note = heard.append
        items = [{"name": n, "kind": "log", "step": None, "size": 1} for n in ("a.txt", "b.txt")]
        attempt.link.call("put_batch", [b"a", b"b"], items=items, patient=True)
    assert [line.split(",")[0] for line in heard] == ["storage unreachable (try 1)"]
