"""Root without root's powers: when a root worker's jobs cannot run as another account (the
interpreter lies where the job account may not reach, or GANFORGE_JOB_USER is empty), they
keep uid 0 but give up every capability for good before the exec.

Without CAP_SYS_PTRACE a job cannot read a non-dumpable service process's /proc/<pid>/environ
or memory (the worker's, holding the credentials); without CAP_DAC_OVERRIDE, CAP_SYS_ADMIN and
the rest it cannot override file modes, mount, load modules or change the Landlock that
confines its files. `SECBIT_NOROOT` (locked) keeps the execve from handing uid 0 its full set
back; the bounding set and the ambient set are emptied so that nothing can be regained.
"""

from __future__ import annotations

from pathlib import Path

from worker.sandbox.libc import prctl

PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_GET_SECUREBITS = 27
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECBIT_NOROOT = 1 << 0
SECBIT_NOROOT_LOCKED = 1 << 1
SECBIT_NO_SETUID_FIXUP = 1 << 2
SECBIT_NO_SETUID_FIXUP_LOCKED = 1 << 3
SECBIT_KEEP_CAPS_LOCKED = 1 << 5
SECBIT_NO_CAP_AMBIENT_RAISE = 1 << 6
SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED = 1 << 7
LOCKED_SECUREBITS = (
    SECBIT_NOROOT
    | SECBIT_NOROOT_LOCKED
    | SECBIT_NO_SETUID_FIXUP
    | SECBIT_NO_SETUID_FIXUP_LOCKED
    | SECBIT_KEEP_CAPS_LOCKED
    | SECBIT_NO_CAP_AMBIENT_RAISE
    | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED
)
CAP_LAST_CAP_FILE = Path("/proc/sys/kernel/cap_last_cap")


def last_capability() -> int:
    try:
        return int(CAP_LAST_CAP_FILE.read_text())
    except OSError:
        return 40  # CAP_CHECKPOINT_RESTORE, the last one Linux 5.9 to 6.x define


def drop_all_capabilities() -> None:
    """Give up every capability for this process and whatever it execs. Needs CAP_SETPCAP
    (root has it), so it runs before anything else is given up; raises OSError otherwise."""
    prctl(PR_SET_SECUREBITS, LOCKED_SECUREBITS)
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    for capability in range(last_capability() + 1):
        prctl(PR_CAPBSET_DROP, capability)


def effective_capabilities(pid: str = "self") -> int:
    """CapEff of a process, from /proc (0: none)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0
