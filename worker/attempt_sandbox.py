"""How the worker puts one attempt's processes in the sandbox (worker/sandbox/): the account
they run as, the folders they may reach, the environment they start with, and the command
line through the shim that applies it all before the launcher (or the warm sampler) starts.

The account is resolved once per worker. A root worker whose job account cannot reach the
interpreter (a Python under root's 0700 home, as on a bare development machine) cannot drop
to it; its jobs keep uid 0 and give up every capability instead, which the worker logs once.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlparse

from shared.config import Settings
from worker.sandbox import SandboxPlan
from worker.sandbox.account import JobAccount, first_closed_folder, job_account, prepare_work_folder
from worker.sandbox.environment import job_environment
from worker.sandbox.limits import AttemptLimits

log = logging.getLogger(__name__)


@cache
def account_for(job_user: str) -> JobAccount | None:
    """The account jobs run as for GANFORGE_JOB_USER=`job_user`, or None (keep this uid)."""
    account = job_account(job_user)
    if account is None:
        return None
    blocked = first_closed_folder(Path(sys.executable).resolve().parent, account)
    if blocked is not None:
        log.warning(
            "sandbox: %s cannot reach the interpreter (%s is closed to it); job processes run "
            "as uid 0 with every capability given up instead. Install Python where %s may "
            "reach it to run them as %s.",
            account.name,
            blocked,
            account.name,
            account.name,
        )
        return None
    return account


def protected_folders(settings: Settings) -> list[Path]:
    """What no job may reach: the service's home (its database file, local artifacts, broker
    folder, other jobs' work folders) and a local artifact folder kept elsewhere. One that lies
    under a data root (jobs must read those) is left out, with a warning."""
    folders = [settings.home]
    parsed = urlparse(settings.storage_url)
    if parsed.scheme == "file":
        folders.append(Path(unquote(parsed.path)))
    kept = []
    for folder in folders:
        resolved = Path(os.path.realpath(folder))
        if any(resolved.is_relative_to(os.path.realpath(root)) for root in settings.data_roots):
            log.warning("sandbox: %s lies under a data root, so jobs may read it", folder)
            continue
        kept.append(resolved)
    return kept


def attempt_sandbox(
    settings: Settings,
    work_folder: Path,
    extra_environment: Mapping[str, str],
    readable: Sequence[Path] = (),
    address_space_bytes: int | None = None,
) -> tuple[SandboxPlan, dict[str, str]]:
    """The sandbox plan and environment of an attempt working in `work_folder` (made the job
    account's here)."""
    account = account_for(settings.job_user)
    prepare_work_folder(work_folder, account)
    plan = SandboxPlan.for_attempt(
        work_folder,
        account=account,
        data_roots=settings.data_roots,
        protected=protected_folders(settings),
        extra_readable=readable,
        limits=AttemptLimits(address_space_bytes=address_space_bytes),
    )
    return plan, job_environment(extra_environment, work_folder)


def sandboxed(
    settings: Settings,
    work_folder: Path,
    argv: Sequence[str],
    extra_environment: Mapping[str, str],
    readable: Sequence[Path] = (),
    address_space_bytes: int | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run `argv` in the sandbox of an attempt working
    in `work_folder` (made the job account's here)."""
    plan, environment = attempt_sandbox(
        settings, work_folder, extra_environment, readable, address_space_bytes
    )
    return plan.command(argv), environment
