"""The orphan collector: objects under jobs/ that no artifact row refers to, left by a writer
killed between storing the bytes and recording their row (put_artifact stores first), by a
superseded attempt refused its row, or by a job deletion or retention sweep whose object
delete failed.

Only where nothing can still record a row for them: under the prefix of a finished job (its
row-less objects), of a deleted job, or of a job the database does not know (all of them);
never under an unfinished job's. And only objects older than GANFORGE_ORPHAN_GRACE_S, so an
upload whose row is a moment behind its bytes is never taken for an orphan.

It lists the whole jobs/ prefix (one request per 1,000 objects on S3), so the scheduler runs
it rarely (GANFORGE_ORPHAN_INTERVAL_S) and deletes at most ORPHANS_PER_RUN per run.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db import session_scope
from shared.jobs.readers import FINISHED
from shared.models import Artifact, Job, is_our_id, utcnow
from shared.storage import ObjectInfo, Storage, StorageError

log = logging.getLogger(__name__)

JOBS_PREFIX = "jobs/"
# Deletes per run: a backlog (a store restored from an old backup) drains over a few runs
# instead of holding the scheduler's loop.
ORPHANS_PER_RUN = 1000
# Job ids per database query.
QUERY_CHUNK = 500


@dataclass(frozen=True)
class _JobRow:
    state: str
    deleted: bool


def find_orphans(
    database_url: str, store: Storage, grace_s: float, now: datetime | None = None
) -> list[str]:
    """The keys the collector would delete now, oldest job prefix first."""
    cutoff = (now or utcnow()) - timedelta(seconds=grace_s)
    by_job: dict[str, list[ObjectInfo]] = defaultdict(list)
    for info in store.list(JOBS_PREFIX):
        job_id = info.key[len(JOBS_PREFIX) :].split("/", 1)[0]
        if is_our_id(job_id) and info.modified is not None and info.modified <= cutoff:
            by_job[job_id].append(info)
    if not by_job:
        return []
    with session_scope(database_url) as session:
        jobs = _job_rows(session, list(by_job))
        finished = [job_id for job_id, row in jobs.items() if row.state in FINISHED]
        recorded = _artifact_keys(session, finished)
    orphans = []
    for job_id, objects in by_job.items():
        row = jobs.get(job_id)
        if row is not None and not row.deleted and row.state not in FINISHED:
            continue  # still running or waiting to: its rows may yet come
        whole = row is None or row.deleted
        orphans += [info.key for info in objects if whole or info.key not in recorded]
    return orphans


def collect_orphans(
    database_url: str,
    store: Storage,
    grace_s: float,
    limit: int = ORPHANS_PER_RUN,
    now: datetime | None = None,
) -> list[str]:
    """Delete up to `limit` orphans (find_orphans); returns the keys deleted."""
    deleted = []
    for key in find_orphans(database_url, store, grace_s, now)[:limit]:
        try:
            store.delete(key)
        except StorageError as exc:
            log.warning("orphans: could not delete %s: %s", key, exc)
            continue
        deleted.append(key)
    if deleted:
        log.info("orphans: deleted %d object(s) no artifact row refers to", len(deleted))
    return deleted


def _job_rows(session: Session, job_ids: list[str]) -> dict[str, _JobRow]:
    rows: dict[str, _JobRow] = {}
    for start in range(0, len(job_ids), QUERY_CHUNK):
        chunk = job_ids[start : start + QUERY_CHUNK]
        query = select(Job.id, Job.state, Job.deleted_at).where(Job.id.in_(chunk))
        for job_id, state, deleted_at in session.execute(query):
            rows[job_id] = _JobRow(state, deleted_at is not None)
    return rows


def _artifact_keys(session: Session, job_ids: list[str]) -> set[str]:
    keys: set[str] = set()
    for start in range(0, len(job_ids), QUERY_CHUNK):
        chunk = job_ids[start : start + QUERY_CHUNK]
        keys.update(session.scalars(select(Artifact.key).where(Artifact.job_id.in_(chunk))))
    return keys
