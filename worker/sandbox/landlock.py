"""Landlock (Linux >= 5.13): confine a process and everything it starts to the folders it was
granted, as an unprivileged process may do to itself.

The rules hold even for root and survive execve and setuid: a job process cannot write beneath
any folder but those granted writable, nor read beneath any but those granted readable, whatever
the file modes say. Which folders a job gets is policy (`worker.sandbox.paths`); this module is
only the mechanism. It degrades, with one warning, to doing nothing on a kernel without Landlock
(before 5.13, or not among the boot's `lsm=`), and asks for no more rights than the kernel's ABI
knows (v1 the base set, v2 REFER, v3 TRUNCATE, v5 IOCTL_DEV).

Network rules (ABI 4) are left unhandled on purpose: a job's ranks reach each other over TCP
(gloo, NCCL's bootstrap), across nodes too. From ABI 6 the process is also scoped: it cannot
signal, or connect to the abstract Unix sockets of, processes outside its own sandbox (the
worker, other jobs), while its own ranks, inside it, still can (NCCL's proxy uses abstract
sockets between them).

Landlock binds the calling thread only: call `restrict_filesystem` where the process has one
thread (the shim `worker.sandbox.enter`), before it starts any.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from worker.sandbox.libc import PR_SET_NO_NEW_PRIVS, prctl, syscall

log = logging.getLogger(__name__)

# Same numbers on x86_64 and aarch64 (the asm-generic table; Landlock came after the split).
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1

# Filesystem rights (linux/landlock.h), with the ABI version that introduced each.
ACCESS_FS_EXECUTE = 1 << 0
ACCESS_FS_WRITE_FILE = 1 << 1
ACCESS_FS_READ_FILE = 1 << 2
ACCESS_FS_READ_DIR = 1 << 3
ACCESS_FS_REMOVE_DIR = 1 << 4
ACCESS_FS_REMOVE_FILE = 1 << 5
ACCESS_FS_MAKE_CHAR = 1 << 6
ACCESS_FS_MAKE_DIR = 1 << 7
ACCESS_FS_MAKE_REG = 1 << 8
ACCESS_FS_MAKE_SOCK = 1 << 9
ACCESS_FS_MAKE_FIFO = 1 << 10
ACCESS_FS_MAKE_BLOCK = 1 << 11
ACCESS_FS_MAKE_SYM = 1 << 12
ACCESS_FS_REFER = 1 << 13  # ABI 2: rename and link across folders
ACCESS_FS_TRUNCATE = 1 << 14  # ABI 3: truncate(2), open(O_TRUNC)
ACCESS_FS_IOCTL_DEV = 1 << 15  # ABI 5: ioctl on character and block devices (GPUs)

_ABI_1_FS = (ACCESS_FS_MAKE_SYM << 1) - 1
# Every filesystem right each ABI knows; later ABIs (4: network, 6: scopes, 7: audit logging)
# added none.
_FS_RIGHTS_BY_ABI = {
    1: _ABI_1_FS,
    2: _ABI_1_FS | ACCESS_FS_REFER,
    3: _ABI_1_FS | ACCESS_FS_REFER | ACCESS_FS_TRUNCATE,
    5: _ABI_1_FS | ACCESS_FS_REFER | ACCESS_FS_TRUNCATE | ACCESS_FS_IOCTL_DEV,
}

# ABI 6 scopes: signals and abstract Unix sockets stay within the sandbox.
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
SCOPE_SIGNAL = 1 << 1
_SCOPES_SINCE_ABI = 6

READ_RIGHTS = ACCESS_FS_EXECUTE | ACCESS_FS_READ_FILE | ACCESS_FS_READ_DIR
LIST_RIGHTS = ACCESS_FS_READ_DIR
# The rights a rule on a file (not a folder) may carry; the kernel refuses the others there.
_FILE_RIGHTS = (
    ACCESS_FS_EXECUTE
    | ACCESS_FS_WRITE_FILE
    | ACCESS_FS_READ_FILE
    | ACCESS_FS_TRUNCATE
    | ACCESS_FS_IOCTL_DEV
)


class _RulesetAttr(ctypes.Structure):
    # struct landlock_ruleset_attr; its size tells the kernel which fields we know.
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    # struct landlock_path_beneath_attr, declared packed in the kernel's header.
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The Landlock ABI version this kernel offers; 0 where it has none (too old, Landlock not
    enabled at boot, or the syscall refused by a container's seccomp profile: EPERM)."""
    try:
        return syscall(SYS_LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    except OSError as error:
        if error.errno in (errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
            return 0
        raise


def fs_rights(abi: int) -> int:
    """Every filesystem right ABI version `abi` knows: what a ruleset handles (denies unless a
    rule grants it)."""
    known = [version for version in _FS_RIGHTS_BY_ABI if version <= abi]
    return _FS_RIGHTS_BY_ABI[max(known)] if known else 0


def set_no_new_privs() -> None:
    """No execve may grant more privileges from here on (set-uid bits, file capabilities are
    ignored): what lets an unprivileged process restrict itself, and it survives execve."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def restrict_filesystem(
    writable: Iterable[Path],
    readable: Iterable[Path],
    listable: Iterable[Path] = (),
    *,
    scope_ipc: bool = True,
) -> int:
    """Confine this thread, and whatever it execs or starts, to: reading, writing, creating and
    removing beneath each `writable` path; reading and executing beneath each `readable` one;
    listing (not reading) beneath each `listable` one (a source tree's root that must be on
    sys.path but may hold files such as a `.env` that a job must not read). Nothing else of the
    file system is reachable, root or not. `scope_ipc` (ABI 6) keeps signals and abstract
    Unix sockets inside the sandbox.

    A path that does not exist is skipped (a `/lib32` on a machine that has none). Sets
    no_new_privs first. Returns the ABI version enforced: 0 when the kernel has no Landlock,
    which is logged, and the process runs unconfined.
    """
    abi = landlock_abi()
    if abi == 0:
        log.warning(
            "Landlock is not available (it needs Linux >= 5.13 with landlock in lsm=, and a "
            "seccomp profile that allows it): job processes are not confined to their folders"
        )
        return 0
    handled = fs_rights(abi)
    attr = _RulesetAttr(handled_access_fs=handled)
    if scope_ipc and abi >= _SCOPES_SINCE_ABI:
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
    ruleset = syscall(
        SYS_LANDLOCK_CREATE_RULESET, ctypes.c_void_p(ctypes.addressof(attr)), ctypes.sizeof(attr), 0
    )
    try:
        grants = [(writable, handled), (readable, READ_RIGHTS), (listable, LIST_RIGHTS)]
        for paths, rights in grants:
            for path in paths:
                _allow_beneath(ruleset, Path(path), rights & handled)
        set_no_new_privs()
        syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0)
    finally:
        os.close(ruleset)
    return abi


def _allow_beneath(ruleset: int, path: Path, rights: int) -> None:
    """Add a rule granting `rights` beneath `path` (on the file itself when it is not a
    folder). O_PATH follows a symbolic link, so the rule lands on what it points to."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        log.debug("sandbox: %s does not exist; no rule for it", path)
        return
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= _FILE_RIGHTS
        rule = _PathBeneathAttr(allowed_access=rights, parent_fd=fd)
        syscall(
            SYS_LANDLOCK_ADD_RULE,
            ruleset,
            LANDLOCK_RULE_PATH_BENEATH,
            ctypes.c_void_p(ctypes.addressof(rule)),
            0,
        )
    finally:
        os.close(fd)
