"""The OS-level sandbox of a job's processes (Linux), which run researchers' own code.

Layers, each of which degrades with a log line where the kernel or the setup lacks it:
- `environment`: an allow-listed environment, never the worker's (no secrets to read);
- `account`: a root worker's jobs run as an unprivileged account (GANFORGE_JOB_USER), or,
  where they cannot (the account cannot reach the interpreter), as uid 0 with every
  capability given up (`capabilities`);
- `limits`: rlimits per attempt (descriptors, processes, no core files);
- `landlock` with the policy of `paths`: a job reaches only its work folder, its data, the
  interpreter and the system's libraries, never $GANFORGE_HOME or the other jobs' folders;
- `harden_service_process()`: the service's own processes cannot be read or traced through
  /proc by same-uid processes.

A `SandboxPlan` carries all of it to the child. The worker runs `plan.command(argv)`: the shim
(`worker.sandbox.enter`, in an isolated interpreter) applies the plan in a fresh,
single-threaded process and then execs argv. Not Popen's `preexec_fn`: Python documents it as
unsafe in a process with threads (the child of fork may deadlock on a lock another thread
held), and the worker runs Celery's thread pool; Landlock, too, binds only the calling thread.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shared.hardening import harden_service_process
from worker.sandbox.account import JobAccount, drop_privileges
from worker.sandbox.capabilities import drop_all_capabilities
from worker.sandbox.landlock import restrict_filesystem, set_no_new_privs
from worker.sandbox.limits import AttemptLimits
from worker.sandbox.paths import job_paths, source_folders

log = logging.getLogger(__name__)

__all__ = ["SandboxPlan", "harden_service_process"]

# What `python -I -c` runs: the shim's main, found under ganforge's source root.
_SHIM_BOOT = (
    "import sys; sys.path.append({root!r}); "
    "from worker.sandbox.enter import main; sys.exit(main(sys.argv[1:]))"
)

# Files a job creates are its own: other accounts (and, with Landlock off, other jobs) cannot
# read its checkpoints or logs. The worker reads them as root or as the same uid.
JOB_UMASK = 0o077


@dataclass(frozen=True)
class SandboxPlan:
    """What the shim applies to a job's first process before it execs the job's command.

    `account`: who to become (None: keep this uid); `limits`: its rlimits; `writable`,
    `readable`, `listable`: its Landlock grants (`confine` False: no Landlock at all);
    `keep_fds`: inherited descriptors to keep open besides 0, 1 and 2."""

    account: JobAccount | None = None
    limits: AttemptLimits = field(default_factory=AttemptLimits)
    writable: tuple[Path, ...] = ()
    readable: tuple[Path, ...] = ()
    listable: tuple[Path, ...] = ()
    confine: bool = True
    keep_fds: tuple[int, ...] = ()
    # A root worker whose jobs keep uid 0 (no account): they give up every capability.
    drop_capabilities: bool = False

    @classmethod
    def for_attempt(
        cls,
        work_folder: Path,
        *,
        account: JobAccount | None,
        data_roots: Iterable[Path] = (),
        protected: Iterable[Path] = (),
        limits: AttemptLimits | None = None,
        keep_fds: Sequence[int] = (),
        extra_readable: Iterable[Path] = (),
    ) -> SandboxPlan:
        """The plan of one attempt working in `work_folder` (see `worker.sandbox.paths`):
        `protected` holds what the job must never reach (GANFORGE_HOME, the artifact folder),
        ExposedFolderError when a grant would contain one."""
        paths = job_paths(
            work_folder, data_roots, protected=protected, extra_readable=extra_readable
        )
        return cls(
            account=account,
            drop_capabilities=account is None and os.geteuid() == 0,
            limits=limits or AttemptLimits(),
            writable=paths.writable,
            readable=paths.readable,
            listable=paths.listable,
            keep_fds=tuple(keep_fds),
        )

    def command(self, argv: Sequence[str]) -> list[str]:
        """The command line that runs `argv` inside this sandbox: the shim, as
        `python -m worker.sandbox.enter` would run it but in isolated mode (-I), since it runs
        as root: neither the working folder (a `json.py` dropped in /tmp) nor PYTHON*
        variables can put code of theirs into it. ganforge's source root goes last on its
        sys.path, where it shadows nothing of the standard library's."""
        boot = _SHIM_BOOT.format(root=str(source_folders().root))
        return [sys.executable, "-I", "-c", boot, "--plan", self.to_json(), "--", *argv]

    def apply(self) -> None:
        """Sandbox this process, in this order: the rlimits and umask while still privileged
        (root may set any hard limit; the account could not raise one later); no_new_privs;
        Landlock, whose rules open each granted path, which root can do wherever it lies; and
        last the drop to the account, so nothing runs as the account unconfined. Landlock
        and no_new_privs survive setuid and execve alike. For a single-threaded process."""
        self.limits.apply()
        os.umask(JOB_UMASK)
        set_no_new_privs()
        if self.confine:
            restrict_filesystem(self.writable, self.readable, self.listable)
        if self.account is not None:
            drop_privileges(self.account)
        elif self.drop_capabilities:
            drop_all_capabilities()

    def narrow(self) -> None:
        """Apply this plan to a process already inside a job sandbox (a launcher forked by the
        node's fork server, worker/forkserver/): its rlimits (only ever lowered: the server's
        are the same or higher), the umask, and a Landlock layer of its own, which the kernel
        intersects with the server's, so the process reaches only what both grant. Who it
        runs as was settled by the server's plan: one naming another account is refused."""
        if self.account is not None and os.geteuid() != self.account.uid:
            raise PermissionError(
                f"a process of uid {os.geteuid()} cannot become {self.account.name} here"
            )
        self.limits.apply()
        os.umask(JOB_UMASK)
        set_no_new_privs()
        if self.confine:
            restrict_filesystem(self.writable, self.readable, self.listable)

    def preexec(self) -> None:
        """`apply` as Popen's preexec_fn, for a parent with one thread only (a test, a
        single-threaded tool); the worker uses `command` and the shim instead."""
        self.apply()

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> SandboxPlan:
        raw: dict[str, Any] = json.loads(text)
        return cls(
            account=JobAccount(**raw["account"]) if raw["account"] else None,
            limits=AttemptLimits(**raw["limits"]),
            writable=tuple(Path(p) for p in raw["writable"]),
            readable=tuple(Path(p) for p in raw["readable"]),
            listable=tuple(Path(p) for p in raw["listable"]),
            confine=bool(raw["confine"]),
            keep_fds=tuple(int(fd) for fd in raw["keep_fds"]),
            drop_capabilities=bool(raw.get("drop_capabilities", False)),
        )
