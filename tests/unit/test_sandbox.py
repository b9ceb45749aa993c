"""Real children started through the shim `python -m worker.sandbox.enter`: as root they run
as `nobody`; with or without that drop, Landlock keeps them to their work folder and their
rlimits hold; a hardened service process hides its environment even from its own uid."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.sandbox import SandboxPlan
from worker.sandbox.account import JobAccountError, job_account, prepare_work_folder
from worker.sandbox.enter import EXIT_COMMAND_FAILED
from worker.sandbox.environment import job_environment
from worker.sandbox.landlock import landlock_abi
from worker.sandbox.limits import AttemptLimits

pytestmark = pytest.mark.processes  # starts interpreters: outside `make test-fast`

SECRET = "SECRET=xyz"
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def need_root() -> None:
    """The sandbox is tested as the worker runs it in deployment: as root, dropping to an
    account. A missing prerequisite fails, saying what the machine needs."""
    if os.geteuid() != 0:
        pytest.fail("run the test suite as root: dropping to another account needs it")


def need_landlock() -> None:
    if landlock_abi() == 0:
        pytest.fail("this kernel has no Landlock: use Linux >= 5.13 with landlock in lsm=")


@pytest.fixture
def hardened_parent() -> Iterator[int]:
    """A service-like process holding SECRET in its environment that hardened itself."""
    code = (
        "import sys; from worker.sandbox import harden_service_process;"
        "assert harden_service_process(); print('ready', flush=True); sys.stdin.read()"
    )
    env = {"PYTHONPATH": str(SOURCE_ROOT), "SECRET": "xyz"}
    process = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    yield process.pid
    process.communicate(b"", timeout=10)


@pytest.fixture
def outside() -> Iterator[Path]:
    """A folder in /tmp the `nobody` account can search (unlike pytest's root-only tmp_path)."""
    folder = Path(tempfile.mkdtemp(prefix="ganforge-sandbox-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def run_sandboxed(plan: SandboxPlan, argv: list[str], work: Path, **popen: object) -> str:
    done = subprocess.run(
        plan.command(argv),
        env=job_environment({}, work, source={**os.environ, "AWS_SECRET_ACCESS_KEY": "k"}),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=60,
        **popen,  # type: ignore[call-overload]
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# Each check prints `name=yes` when the action succeeded, `name=no` when it was refused.
PROBE_SCRIPT = """
check() {{ if eval "$2" >/dev/null 2>&1; then echo "$1=yes"; else echo "$1=no"; fi; }}
echo "uid=$(id -u)"
check read-root-0600 'cat {root_only}'
check read-home-0644 'cat {home_file}'
check write-tmp 'echo x > /tmp/{unique}'
check write-work 'echo x > "$HOME/inside" && test -s "$HOME/inside"'
check read-parent-environ 'grep -q {secret} /proc/{parent}/environ'
check env-has-secret 'env | grep -q -e AWS_ -e SECRET'
grep -e 'open files' -e 'core file' /proc/self/limits
"""


def test_as_root_a_job_runs_as_nobody_in_its_folder_only(
    outside: Path, hardened_parent: int
) -> None:
    need_root()
    need_landlock()
    account = job_account("nobody")
    assert account is not None and account.uid != 0
    work = outside / "work" / "job"
    prepare_work_folder(work, account)
    assert (work.stat().st_uid, work.stat().st_mode & 0o777) == (account.uid, 0o700)
    root_only = outside / "root-only"
    root_only.write_text("root's")
    root_only.chmod(0o600)
    home = outside / "home"
    home.mkdir()
    (home / "ganforge.db").write_text("every job's specs")  # readable to all by its mode
    script = PROBE_SCRIPT.format(
        root_only=root_only,
        home_file=home / "ganforge.db",
        unique=f"{outside.name}-written",
        secret=SECRET,
        parent=hardened_parent,
    )
    limits = AttemptLimits(open_files=512)
    plan = SandboxPlan.for_attempt(work, account=account, protected=[home], limits=limits)
    output = run_sandboxed(plan, ["/bin/sh", "-c", script], work)
    assert f"uid={account.uid}" in output
    for refused in ("read-root-0600", "read-home-0644", "write-tmp", "read-parent-environ"):
        assert f"{refused}=no" in output, output
    assert "write-work=yes" in output and "env-has-secret=no" in output, output
    assert not (Path("/tmp") / f"{outside.name}-written").exists()
    assert (work / "inside").stat().st_uid == account.uid
    limits_lines = [line.split() for line in output.splitlines() if "file" in line]
    assert ["512", "512"] in [line[3:5] for line in limits_lines], output  # open files
    assert ["0", "0"] in [line[4:6] for line in limits_lines], output  # core file size


def test_without_an_account_landlock_alone_keeps_a_python_job_in_its_folder(
    tmp_path: Path, hardened_parent: int
) -> None:
    """What a worker that is not root gets (no drop, same uid): the job still imports
    ganforge under Landlock, and reaches nothing of the service's nor the other jobs'."""
    need_landlock()
    home = tmp_path / "home"
    work, other_job = home / "work" / "node" / "job", home / "work" / "node" / "other"
    other_job.mkdir(parents=True)
    (other_job / "result.json").write_text("{}")
    (home / "ganforge.db").write_text("")
    data = tmp_path / "data"
    data.mkdir()
    (data / "digits.npz").write_text("pixels")
    prepare_work_folder(work, None)
    leaked, kept = os.open(data / "digits.npz", os.O_RDONLY), os.open(os.devnull, os.O_RDONLY)
    plan = SandboxPlan.for_attempt(
        work, account=None, data_roots=[data], protected=[home], keep_fds=[kept]
    )
    probe = f"""
import json, os, resource, tempfile, worker.launcher
def can(action, path):
    try:
        open(path, action).close()
        return True
    except OSError:
        return False
def is_open(fd):
    try:
        return os.fstat(fd) is not None
    except OSError:
        return False
print(json.dumps({{
    "read_home": can("r", {str(home / "ganforge.db")!r}),
    "read_other_job": can("r", {str(other_job / "result.json")!r}),
    "read_data": can("r", {str(data / "digits.npz")!r}),
    "write_data": can("a", {str(data / "digits.npz")!r}),
    "write_tmp": can("w", "/tmp/{tmp_path.name}"),
    "write_temp_file": can("w", os.path.join(tempfile.gettempdir(), "t")),
    "read_parent_environ": can("r", "/proc/{hardened_parent}/environ"),
    "leaked_fd_open": is_open({leaked}),
    "kept_fd_open": is_open({kept}),
    "open_files": resource.getrlimit(resource.RLIMIT_NOFILE),
    "core": resource.getrlimit(resource.RLIMIT_CORE),
    "umask": os.umask(0),
}}))
"""
    try:
        output = run_sandboxed(plan, [sys.executable, "-c", probe], work, pass_fds=(leaked, kept))
    finally:
        os.close(leaked)
        os.close(kept)
    seen = json.loads(output)
    if os.geteuid() == 0:
        # Root without a drop keeps CAP_SYS_PTRACE, which passes the non-dumpable check, and
        # Landlock refuses it only attaching (/proc/<pid>/mem), not reading the environment:
        # GANFORGE_JOB_USER empty under a root worker is unsafe, as the README says.
        seen["read_parent_environ"] = False
    assert seen == {
        "read_home": False,
        "read_other_job": False,
        "read_data": True,
        "write_data": False,
        "write_tmp": False,
        "write_temp_file": True,
        "read_parent_environ": False,
        "leaked_fd_open": False,
        "kept_fd_open": True,
        "open_files": [16384, 16384] if os.geteuid() == 0 else seen["open_files"],
        "core": [0, 0],
        "umask": 0o077,
    }


# A process that becomes `nobody`, is as dumpable as one freshly started as it, hardens itself
# or not (argv[1]), and forks a child, also `nobody`, that tries to read its environment.
SAME_UID_PROBE = """
import os, sys
from worker.sandbox import harden_service_process
from worker.sandbox.account import drop_privileges, job_account
from worker.sandbox.libc import PR_SET_DUMPABLE, prctl
drop_privileges(job_account("nobody"))
prctl(PR_SET_DUMPABLE, 1)  # setuid cleared it; an exec as nobody would have set it
if sys.argv[1] == "harden":
    assert harden_service_process()
child = os.fork()
if child == 0:
    try:
        with open(f"/proc/{os.getppid()}/environ", "rb") as environ:
            print("read", b"SECRET=xyz" in environ.read(), flush=True)
    except PermissionError:
        print("refused", flush=True)
    os._exit(0)
os.waitpid(child, 0)
"""


@pytest.mark.parametrize(("mode", "expected"), [("plain", "read True"), ("harden", "refused")])
def test_a_hardened_process_hides_its_environment_from_its_own_uid(
    mode: str, expected: str
) -> None:
    need_root()
    done = subprocess.run(
        [sys.executable, "-c", SAME_UID_PROBE, mode],
        env={"PYTHONPATH": str(SOURCE_ROOT), "SECRET": "xyz"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == expected, done.stderr


def test_a_work_folder_the_account_cannot_reach_is_refused(tmp_path: Path) -> None:
    need_root()
    account = job_account("nobody")
    assert account is not None
    os.chmod(tmp_path, 0o700)
    with pytest.raises(JobAccountError, match=r"cannot reach .* does not let it through"):
        prepare_work_folder(tmp_path / "work", account)


def test_a_command_that_cannot_start_exits_127_saying_why(tmp_path: Path) -> None:
    plan = SandboxPlan(confine=False)
    done = subprocess.run(
        plan.command([str(tmp_path / "missing")]),
        env=job_environment({}, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == EXIT_COMMAND_FAILED
    assert f"could not start {tmp_path / 'missing'}" in done.stderr


def test_the_root_shim_imports_nothing_from_its_working_folder(tmp_path: Path) -> None:
    """The shim runs as root: a `json.py` in its working folder (say /tmp) or on PYTHONPATH
    must not run in it."""
    (tmp_path / "json.py").write_text("raise SystemExit('shadowed')\n")
    done = subprocess.run(
        SandboxPlan(confine=False).command(["/bin/echo", "clean"]),
        env={"PYTHONPATH": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, "clean\n"), done.stderr
