"""What a sampling spec's latents refer to, checked when it is submitted, so a mistake is a
422 naming the field rather than a failed job later:

- every latent vector it gives has the source checkpoint's dimension (its `latent.dim`);
- an `.npy` artifact it names belongs to one of the caller's jobs, exists, and holds latents
  [n, dim] of a float type: read from the file's header only (a few hundred bytes), never
  unpickled.

The worker checks the same again when it reads the latents (worker/gan/latents.py), since an
artifact may be written again after submission; both use `shared.specs.latent_checks`.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.models import Artifact, Job, User
from shared.specs import SampleSpec, SpecError
from shared.specs.latent_checks import (
    MAX_LATENTS_NPY_BYTES,
    Problem,
    latents_array_problem,
    read_npy_header,
    vector_problems,
)
from shared.specs.sample import LatentsArtifact
from shared.storage import ObjectNotFoundError, Storage


def check_sample_inputs(
    session: Session, owner: User, spec: SampleSpec, dim: int, store: Storage | None
) -> None:
    """Raise SpecError naming every latent the spec gives that a generator of latent
    dimension `dim` cannot draw (see the module docstring). Without `store` an artifact's
    contents are left to the worker."""
    problems = vector_problems(spec, dim)
    artifact = spec.latents_artifact
    if artifact is not None:
        problem = _artifact_problem(session, owner, artifact, dim, store)
        if problem is not None:
            problems.append(problem)
    if problems:
        raise SpecError(problems)


def _artifact_problem(
    session: Session, owner: User, artifact: LatentsArtifact, dim: int, store: Storage | None
) -> Problem | None:
    job = session.get(Job, artifact.job_id)
    if job is None or job.owner_id != owner.id:
        return {
            "path": "spec.latents.job_id",
            "message": f"no job {artifact.job_id!r} among your jobs",
        }
    row = session.scalar(
        select(Artifact).where(Artifact.job_id == job.id, Artifact.name == artifact.name)
    )
    if row is None:
        arrays = session.scalars(
            select(Artifact.name).where(Artifact.job_id == job.id, Artifact.name.like("%.npy"))
        ).all()
        have = ", ".join(arrays[:10]) or "none"
        message = f"job {job.id} has no artifact {artifact.name!r} (its .npy artifacts: {have})"
        return {"path": "spec.latents.name", "message": message}
    if row.size > MAX_LATENTS_NPY_BYTES:
        message = f"{artifact.name} is {row.size:,} bytes, more than any valid latents array"
        return {"path": "spec.latents.name", "message": message}
    if store is None:
        return None
    try:
        shape, dtype = read_npy_header(store.open(row.key))
    except ObjectNotFoundError:
        return {"path": "spec.latents.name", "message": f"{artifact.name} is no longer stored"}
    except ValueError as unreadable:
        return {"path": "spec.latents.name", "message": f"{artifact.name}: {unreadable}"}
    problem = latents_array_problem(shape, dtype, dim)
    if problem is None:
        return None
    return {"path": "spec.latents", "message": f"{artifact.name} {problem}"}
