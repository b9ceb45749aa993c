"""A job process that tries to reach what is not its own, started as the worker starts an
attempt's launcher: through the sandbox shim, with the attempt's agent as its only door. Each
attempt is made for real from inside the sandbox and must fail; nothing of anyone else's is
read or changed. (The bring-your-own-code suite repeats it from a bundle inside a rank.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.config import Settings
from shared.storage import keys, open_storage
from tests.attempts import attempt_of
from tests.unit.job_factories import running_job
from worker.attempt_sandbox import sandboxed
from worker.channel.link import SOCKET_VARIABLE

pytestmark = pytest.mark.processes

ADDRESS_SPACE = 64 << 30
SECRET = "postgresql://ganforge:hunter2@db/ganforge"

HOSTILE = r"""
import json, os, sys
from worker.channel.link import AgentLink, JobInputError
victim, home, theirs = int(sys.argv[1]), sys.argv[2], sys.argv[3]
tried = {}
def attempt(name, action):
    try:
        action()
        tried[name] = "succeeded"
    except Exception as error:
        tried[name] = type(error).__name__
tried["secrets_in_environment"] = sorted(
    k for k, v in os.environ.items()
    if "hunter2" in v or k.startswith(("GANFORGE_DATABASE", "GANFORGE_STORAGE", "AWS_"))
)
attempt("read_worker_environ", lambda: open(f"/proc/{victim}/environ", "rb").read())
attempt("read_service_home", lambda: open(os.path.join(home, "secret.txt")).read())
attempt("list_service_home", lambda: os.listdir(home))
attempt("write_tmp", lambda: open("/tmp/ganforge-hostile-probe", "w").write("x"))
attempt("write_service_home", lambda: open(os.path.join(home, "planted.txt"), "w").write("x"))
attempt("write_own_folder", lambda: open("mine.txt", "w").write("x"))
link = AgentLink.from_environment()
attempt("read_other_owners_checkpoint", lambda: link.call("checkpoint", job_id=theirs, step=None))
attempt("oversized_put", lambda: link.call("put", b"x" * 4096, name="log.txt", kind="log"))
import resource
tried["address_space_limit"] = resource.getrlimit(resource.RLIMIT_AS)[0]
print(json.dumps(tried))
"""


def test_a_job_process_reaches_nothing_of_the_service_or_of_other_users(
    settings: Settings, tmp_path: Path
) -> None:
    home = settings.home
    (home / "secret.txt").write_text(SECRET)
    victim = subprocess.Popen(  # the worker: non-dumpable, holding the credentials
        [
            sys.executable,
            "-c",
            "from shared.hardening import harden_service_process as h; "
            "import sys; h(); print('ready', flush=True); sys.stdin.read()",
        ],
        env={**os.environ, "GANFORGE_DATABASE_URL": SECRET},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert victim.stdout is not None and victim.stdout.readline() == "ready\n"
    mine, theirs = running_job(settings, "alice"), running_job(settings, "bob")
    store = open_storage(settings)
    try:
        with attempt_of(settings, store, mine, 1, home / "work") as attempt:
            attempt.agent.max_upload_bytes = 1024
            argv = [sys.executable, "-c", HOSTILE, str(victim.pid), str(home), theirs]
            command, environment = sandboxed(
                settings,
                attempt.agent.folders.job,
                argv,
                {SOCKET_VARIABLE: str(attempt.agent.socket_path)},
                address_space_bytes=ADDRESS_SPACE,
            )
            process = subprocess.Popen(
                command,
                cwd=attempt.agent.folders.job,
                env={**environment},
                start_new_session=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            attempt.agent.admit(process.pid)
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
            tried = json.loads(out.strip().splitlines()[-1])
            violation = attempt.agent.violation
    finally:
        victim.kill()
    assert tried == {
        "secrets_in_environment": [],
        "read_worker_environ": "PermissionError",
        "read_service_home": "PermissionError",
        "list_service_home": "PermissionError",
        "write_tmp": "PermissionError",
        "write_service_home": "PermissionError",
        "write_own_folder": "succeeded",
        "read_other_owners_checkpoint": "JobInputError",
        "oversized_put": "AgentUnavailableError",
        "address_space_limit": ADDRESS_SPACE,  # spec.resources.address_space_gib
    }
    assert "a payload of more than 1,024 bytes" in (violation or "")
    assert not (home / "planted.txt").exists()
    assert store.list(keys.job_prefix(theirs)) == []
