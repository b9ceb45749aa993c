"""The storage quota: how many bytes a user may store before new work is refused.

GANFORGE_STORAGE_QUOTA_BYTES is everyone's default (0: no limit); an admin's per-user value
(users.storage_quota_bytes) overrides it: null follows the default, 0 lifts the limit.

Only what a person starts is refused, when their usage has reached the quota: a new job, a
dataset or code upload. What a running job writes (its checkpoints, samples, log) is never
refused: failing a long run for one more checkpoint would lose more than the bytes it saves,
and the owner's next submission is refused anyway until they delete something.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.models import User
from shared.storage_usage import UserUsage, largest_jobs, usage_of
from shared.users import UnknownUserError


class StorageQuotaExceededError(RuntimeError):
    """The user stores as many bytes as their quota allows; the message says what to delete."""

    def __init__(self, message: str, quota: int, usage: int):
        super().__init__(message)
        self.quota, self.usage = quota, usage


def effective_quota(user: User, default: int) -> int | None:
    """The user's quota in bytes, or None for no limit."""
    quota = user.storage_quota_bytes if user.storage_quota_bytes is not None else default
    return quota or None


def check_storage_quota(session: Session, user: User, default: int, what: str) -> None:
    """Refuse `what` (e.g. "new jobs") with StorageQuotaExceededError when the user's usage has
    reached their quota; no query at all when they have none."""
    quota = effective_quota(user, default)
    if quota is None:
        return
    usage = usage_of(session, user.id)
    if usage.total < quota:
        return
    raise StorageQuotaExceededError(_refusal(session, user, usage, quota, what), quota, usage.total)


def _refusal(session: Session, user: User, usage: UserUsage, quota: int, what: str) -> str:
    biggest = largest_jobs(session, user.id, limit=3)
    named = ", ".join(f"{job.job_id[:8]} ({format_bytes(job.bytes)})" for job in biggest)
    hint = f"; your largest jobs: {named}" if named else ""
    return (
        f"{what} refused: you store {format_bytes(usage.total)} ({usage.total} bytes: artifacts "
        f"{format_bytes(usage.artifacts)}, datasets {format_bytes(usage.datasets)}, code "
        f"{format_bytes(usage.code)}) and your storage quota is {format_bytes(quota)} "
        f"({quota} bytes); delete finished jobs (`ganforge delete JOB`), datasets or code "
        f"bundles to get below it (`ganforge usage` lists what you store){hint}"
    )


def set_storage_quota(session: Session, user_name: str, quota: int | None) -> User:
    """Set a user's storage quota in bytes: None follows the default, 0 is no limit."""
    user = session.scalar(select(User).where(User.name == user_name))
    if user is None:
        raise UnknownUserError(f"no user named {user_name!r}")
    user.storage_quota_bytes = quota
    session.flush()
    return user


def format_bytes(size: int) -> str:
    """`1.5 GiB`: sizes as people read them (the exact count goes beside where it matters)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
