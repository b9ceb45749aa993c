"""How many bytes each user stores: job artifacts, uploaded datasets and code bundles.

Counted from the database's rows (artifacts.size, datasets.size, code_archives.size), never by
listing the store: a bucket scan per request would cost as much as the store is large, and the
rows are what the quota (shared/storage_quota.py) is enforced on.

A code archive is stored once per content however many users upload it, but each owner who
holds a bundle of it is charged its whole size: a user's usage then depends only on what they
hold, so another user deleting their copy never pushes them over their quota, and deleting
their own bundle always frees what they were charged for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Executable, func, select
from sqlalchemy.orm import Session

from shared.models import Artifact, CodeArchive, CodeBundle, Dataset, Job, User

# The jobs a usage report names, largest first: enough to choose what to delete.
LARGEST_JOBS = 10


@dataclass(frozen=True)
class UserUsage:
    """One user's stored bytes by category."""

    user_id: str
    artifacts: int = 0
    datasets: int = 0
    code: int = 0

    @property
    def total(self) -> int:
        return self.artifacts + self.datasets + self.code


@dataclass(frozen=True)
class JobUsage:
    """One job's stored artifacts: how many and their bytes."""

    job_id: str
    owner_id: str
    name: str
    state: str
    artifacts: int
    bytes: int


def usage_of(session: Session, user_id: str) -> UserUsage:
    """One user's usage (four small aggregate queries, each on an owner index)."""
    return _usage(session, [user_id])[user_id]


def usage_by_user(session: Session) -> list[UserUsage]:
    """Every user's usage, users with nothing stored included, largest total first."""
    user_ids = list(session.scalars(select(User.id)))
    found = _usage(session, user_ids)
    return sorted(found.values(), key=lambda usage: (-usage.total, usage.user_id))


def largest_jobs(
    session: Session, owner_id: str | None, limit: int = LARGEST_JOBS
) -> list[JobUsage]:
    """The jobs holding the most artifact bytes: the owner's, or everyone's when None."""
    total = func.coalesce(func.sum(Artifact.size), 0)
    query = (
        select(Job.id, Job.owner_id, Job.name, Job.state, func.count(Artifact.id), total)
        .join(Artifact, Artifact.job_id == Job.id)
        .group_by(Job.id, Job.owner_id, Job.name, Job.state)
        .order_by(total.desc(), Job.id)
        .limit(limit)
    )
    if owner_id is not None:
        query = query.where(Job.owner_id == owner_id)
    return [
        JobUsage(job_id, owner, name, state, int(count), int(size))
        for job_id, owner, name, state, count, size in session.execute(query)
    ]


def _usage(session: Session, user_ids: Iterable[str]) -> dict[str, UserUsage]:
    wanted = list(user_ids)
    artifacts = _sums(
        session,
        select(Job.owner_id, func.sum(Artifact.size))
        .join(Artifact, Artifact.job_id == Job.id)
        .where(Job.owner_id.in_(wanted))
        .group_by(Job.owner_id),
    )
    datasets = _sums(
        session,
        select(Dataset.owner_id, func.sum(Dataset.size))
        .where(Dataset.owner_id.in_(wanted))
        .group_by(Dataset.owner_id),
    )
    # CodeBundle's key is (archive, owner): one row per owner per archive, so the sum charges
    # each owner an archive once, whatever names they gave it.
    code = _sums(
        session,
        select(CodeBundle.owner_id, func.sum(CodeArchive.size))
        .join(CodeArchive, CodeArchive.sha256 == CodeBundle.id)
        .where(CodeBundle.owner_id.in_(wanted))
        .group_by(CodeBundle.owner_id),
    )
    return {
        user_id: UserUsage(
            user_id,
            artifacts=artifacts.get(user_id, 0),
            datasets=datasets.get(user_id, 0),
            code=code.get(user_id, 0),
        )
        for user_id in wanted
    }


def _sums(session: Session, query: Executable) -> dict[str, int]:
    """{owner: bytes} from a query of (owner id, sum of sizes) rows."""
    return {owner: int(total or 0) for owner, total in session.execute(query)}
