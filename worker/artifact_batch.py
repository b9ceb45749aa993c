"""Several artifacts of one attempt stored at once: one fencing check, the uploads side by
side, one transaction for their rows.

`worker.artifacts.put_artifact` stores one artifact in three round trips (check the attempt,
upload, check again and write the row). A short job ends with four of them (a sampling job's
grid and latents, then its log.txt and metrics.jsonl): twelve round trips one after another,
most of its time beyond the drawing. Here the same promises hold for the whole batch: the
attempt is checked before any byte is stored and again in the transaction that writes the
rows, every object is whole before its row exists, and a superseded attempt (FencedError)
writes no row at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from shared.db import session_scope, through_outages
from shared.jobs.reports import record_artifact
from shared.storage import Storage
from shared.storage.base import InMemory
from shared.storage.keys import artifact_key
from worker.artifacts import check_current_attempt, put_artifact, sha256_of

# (artifact name, artifact kind, bytes, step or None)
Item = tuple[str, str, InMemory, int | None]


def put_together(
    database_url: str,
    store: Storage,
    job_id: str,
    items: Sequence[Item],
    *,
    attempt: int,
) -> None:
    """Store every item as an artifact of the job's `attempt`; raises FencedError (nothing
    more stored) once the attempt was superseded, or the first upload's error once every
    upload has ended, so none is left running behind the caller."""
    if len(items) <= 1:  # nothing to batch: the one-artifact path
        for name, kind, data, step in items:
            put_artifact(database_url, store, job_id, name, kind, data, step, attempt=attempt)
        return
    names = ", ".join(name for name, *_ in items)
    for retry in through_outages():
        with retry, session_scope(database_url) as session:
            check_current_attempt(session, job_id, attempt, names)
    with ThreadPoolExecutor(max_workers=len(items), thread_name_prefix="artifact-put") as pool:
        uploads = [pool.submit(_upload, store, job_id, name, data) for name, _, data, _ in items]
    digests = [upload.result() for upload in uploads]
    for retry in through_outages():  # the bytes are stored; their rows must follow
        with retry, session_scope(database_url) as session:
            check_current_attempt(session, job_id, attempt, names)
            for (name, kind, data, step), sha256 in zip(items, digests, strict=True):
                record_artifact(
                    session,
                    job_id,
                    name=name,
                    kind=kind,
                    key=artifact_key(job_id, name),
                    size=len(data),
                    sha256=sha256,
                    step=step,
                )


def _upload(store: Storage, job_id: str, name: str, data: InMemory) -> str:
    """Store one object; its SHA-256, as the store computed it while storing, else hashed
    here (while other uploads wait on the network)."""
    stored = store.put(artifact_key(job_id, name), data)
    return stored.sha256 or sha256_of(data)
