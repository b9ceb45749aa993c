"""Writing an artifact: the bytes to storage, then its row (kind, size, sha256, step).

The one path by which anything lands in a job's folder, so the artifact table always lists
what the store holds and listing never needs a bucket scan.
"""

from __future__ import annotations

import hashlib

from shared.db import session_scope, through_outages
from shared.jobs import record_artifact
from shared.storage import Storage
from shared.storage.keys import artifact_key


def put_artifact(
    database_url: str,
    store: Storage,
    job_id: str,
    name: str,
    kind: str,
    data: bytes,
    step: int | None = None,
) -> str:
    """Store `data` as artifact `name` of the job; returns its key."""
    key = artifact_key(job_id, name)
    store.put(key, data)
    for attempt in through_outages():  # the bytes are stored; their row must follow
        with attempt, session_scope(database_url) as session:
            record_artifact(
                session,
                job_id,
                name=name,
                kind=kind,
                key=key,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                step=step,
            )
    return key
