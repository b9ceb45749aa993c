"""What the submission checks of a sampling spec (`sample_inputs` for latents, and
`inversion_inputs` for images) share about an artifact the spec names: that its job is one of
the caller's, that the artifact exists, and its first bytes from storage. Each failure is a
Problem naming the spec's field (`spec.latents.name`, `spec.invert.images.job_id`, ...).

Written once so both checks word a missing job or artifact alike, and read a header the same
way: only its first bytes, with the stream closed after.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.models import Artifact, Job, User
from shared.specs.latent_checks import Problem
from shared.storage import ObjectNotFoundError, Storage


class ArtifactRef(Protocol):
    """How a spec names an artifact (`LatentsArtifact`, `ArtifactImages`): read-only, as
    specs are frozen."""

    @property
    def job_id(self) -> str: ...

    @property
    def name(self) -> str: ...


def problem(path: str, message: str) -> Problem:
    """One problem of a spec, as SpecError lists them."""
    return {"path": path, "message": message}


def owned_artifact(
    session: Session, owner: User, ref: ArtifactRef, field: str, suffix: str, kind: str
) -> Artifact | Problem:
    """The artifact `ref` names, or the problem at `{field}.job_id` (no such job among the
    owner's: another user's job reads as missing, so its existence is not given away) or at
    `{field}.name` (the job has no such artifact; up to 10 of its `suffix` artifacts, called
    `kind` artifacts in the message, are listed to help pick the right one)."""
    job = session.get(Job, ref.job_id)
    if job is None or job.owner_id != owner.id or job.deleted_at is not None:
        return problem(f"{field}.job_id", f"no job {ref.job_id!r} among your jobs")
    row = session.scalar(
        select(Artifact).where(Artifact.job_id == job.id, Artifact.name == ref.name)
    )
    if row is not None:
        return row
    names = session.scalars(
        select(Artifact.name).where(Artifact.job_id == job.id, Artifact.name.like(f"%{suffix}"))
    ).all()
    have = ", ".join(names[:10]) or "none"
    message = f"job {job.id} has no artifact {ref.name!r} (its {kind} artifacts: {have})"
    return problem(f"{field}.name", message)


def stored_head(store: Storage, row: Artifact, field: str, size: int) -> bytes | Problem:
    """At least the first `size` bytes of the artifact's object (whole chunks, fewer when the
    object is shorter), or the problem at `{field}.name` when it has left storage since its
    row was written. A header is all a check needs, so the rest is never read."""
    head = bytearray()
    try:
        chunks = store.open(row.key)
        try:
            for chunk in chunks:
                head += chunk
                if len(head) >= size:
                    break
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # a stream from S3 lets its connection go
    except ObjectNotFoundError:
        return problem(f"{field}.name", f"{row.name} is no longer stored")
    return bytes(head)
