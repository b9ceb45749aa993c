"""Writing an artifact: the bytes to storage, then its row (kind, size, sha256, step).

The one path by which anything lands in a job's folder, so the artifact table always lists
what the store holds and listing never needs a bucket scan.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.orm import Session

from shared.db import session_scope, through_outages
from shared.jobs.reports import attempt_in_progress, record_artifact
from shared.storage import Storage
from shared.storage.base import VERIFIED_PUT_MAX_BYTES, InMemory
from shared.storage.keys import artifact_key

# The store hashes what it stores up to VERIFIED_PUT_MAX_BYTES (ObjectInfo.sha256: S3 checks
# the bytes it received against that digest). Above it the upload goes in parts and the
# SHA-256 runs in a thread beside it (hashlib lets go of the GIL while it hashes).


class FencedError(RuntimeError):
    """The attempt writing is no longer the job's current one (its node was declared dead and
    the job moved on): it may write nothing more."""


def put_artifact(
    database_url: str,
    store: Storage,
    job_id: str,
    name: str,
    kind: str,
    data: InMemory,
    step: int | None = None,
    *,
    attempt: int | None = None,
) -> str:
    """Store `data` as artifact `name` of the job; returns its key. Given `attempt`, a
    superseded attempt (a zombie of a node declared dead) is refused with FencedError, before
    its bytes are stored and again with its row."""
    key = artifact_key(job_id, name)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="artifact-sha256") as hasher:
        beside = hasher.submit(sha256_of, data) if len(data) > VERIFIED_PUT_MAX_BYTES else None
        if attempt is not None:
            for retry in through_outages():
                with retry, session_scope(database_url) as session:
                    check_current_attempt(session, job_id, attempt, name)
        stored = store.put(key, data)
        if stored.sha256 is not None:
            sha256 = stored.sha256
        else:  # a store that did not hash as it stored, or an upload in parts
            sha256 = beside.result() if beside is not None else sha256_of(data)
    for retry in through_outages():  # the bytes are stored; their row must follow
        with retry, session_scope(database_url) as session:
            if attempt is not None:
                check_current_attempt(session, job_id, attempt, name)
            record_artifact(
                session,
                job_id,
                name=name,
                kind=kind,
                key=key,
                size=len(data),
                sha256=sha256,
                step=step,
            )
    return key


def sha256_of(data: InMemory) -> str:
    return hashlib.sha256(data).hexdigest()


def check_current_attempt(session: Session, job_id: str, attempt: int, what: str) -> None:
    """Raise FencedError unless `attempt` is still the job's current one; `what` names the
    artifacts that would have been written, for the message."""
    current = attempt_in_progress(session, job_id)
    if current != attempt:
        raise FencedError(
            f"attempt {attempt} of job {job_id} was superseded (current: {current}); "
            f"not writing {what}"
        )
