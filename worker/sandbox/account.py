"""The unprivileged account job processes run as.

A worker running as root starts its jobs' processes as GANFORGE_JOB_USER (default `nobody`):
the shim `worker.sandbox.enter` clears the supplementary groups, then sets the group and the
user (real, effective and saved), and only then execs the job's command, so nothing of the job
ever runs as root. Root's files, the service's 0600 config and the worker's /proc entries are
then out of the job's reach by file modes alone, and RLIMIT_NPROC means something (it counts
per real uid; root is exempt).

A worker that is not root has nothing to drop to: its jobs run as its own uid, and a job could
do to the worker's files whatever the worker may. The other layers carry the load then:
Landlock (`worker.sandbox.landlock`) confines the job to its folders, the allow-listed
environment keeps the secrets out, and a service process that called
`worker.sandbox.harden_service_process()` cannot be read or traced by a same-uid process.

An empty GANFORGE_JOB_USER with a root worker runs jobs as root: unsafe, for a machine that
runs nothing but trusted code; it is logged as such.
"""

from __future__ import annotations

import logging
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

from worker.sandbox.environment import JOB_SUBFOLDERS

log = logging.getLogger(__name__)

# A work folder is its job's alone: neither other accounts nor other jobs list or read it.
WORK_FOLDER_MODE = 0o700


class JobAccountError(ValueError):
    """GANFORGE_JOB_USER names no usable account, or the account cannot reach a folder."""


@dataclass(frozen=True)
class JobAccount:
    """The account (from the password database) job processes run as."""

    name: str
    uid: int
    gid: int


def job_account(name: str) -> JobAccount | None:
    """The account to drop to for GANFORGE_JOB_USER=`name`; None when there is nothing to drop:
    this process is not root (its jobs keep its uid), or `name` is empty (jobs run as root:
    logged as unsafe). JobAccountError for an unknown account or one that is root itself."""
    if os.geteuid() != 0:
        log.info("sandbox: the worker is not root; job processes run as its own uid")
        return None
    if not name:
        log.warning(
            "sandbox: GANFORGE_JOB_USER is empty: job processes run as root, which is unsafe "
            "for anyone's code but the operator's"
        )
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise JobAccountError(f"GANFORGE_JOB_USER={name!r}: no such account") from None
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise JobAccountError(f"GANFORGE_JOB_USER={name!r} is root's uid or group; name another")
    return JobAccount(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def drop_privileges(account: JobAccount) -> None:
    """Become `account` for good: no supplementary groups (root's would stay otherwise), its
    group, then its user for the real, effective and saved ids, so that no way back to root is
    left. Must run as root; raises where the kernel did not do all of it."""
    os.setgroups([])
    os.setresgid(account.gid, account.gid, account.gid)
    os.setresuid(account.uid, account.uid, account.uid)
    if os.getresuid() != (account.uid,) * 3 or os.getresgid() != (account.gid,) * 3:
        raise PermissionError(f"could not become {account.name} for good")


def prepare_work_folder(path: Path, account: JobAccount | None) -> None:
    """Make `path` (and the TMPDIR and cache folders the job environment points into) a
    0700 folder owned by `account`, or by this process's uid when there is no account to drop
    to. JobAccountError when the account could not reach it: a folder above it that the
    account may not search (a GANFORGE_HOME under root's 0700 home) would leave the job unable
    to open its own folder after the drop."""
    for folder in (path, *(path / name for name in JOB_SUBFOLDERS)):
        folder.mkdir(parents=True, exist_ok=True)
        if account is not None:
            os.chown(folder, account.uid, account.gid)
        os.chmod(folder, WORK_FOLDER_MODE)
    if account is not None:
        closed = first_closed_folder(path, account)
        if closed is not None:
            raise JobAccountError(
                f"{account.name} cannot reach {path}: {closed} "
                f"({stat.filemode(closed.stat().st_mode)}) does not let it through; put the "
                f"work root (GANFORGE_HOME) in folders {account.name} may search"
            )


def first_closed_folder(path: Path, account: JobAccount) -> Path | None:
    """The first folder above `path` that `account` (its primary group only, as after the drop)
    may not search, by the file modes (ACLs aside); None when it may reach `path`."""
    for folder in reversed(Path(os.path.abspath(path)).parents):
        info = folder.stat()
        if info.st_uid == account.uid:
            bit = stat.S_IXUSR
        elif info.st_gid == account.gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return folder
    return None
