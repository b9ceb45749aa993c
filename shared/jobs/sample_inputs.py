"""What a sampling spec's latents refer to, checked when it is submitted, so a mistake is a
422 naming the field rather than a failed job later:

- every latent vector it gives has the source checkpoint's dimension (its `latent.dim`);
- an `.npy` artifact it names belongs to one of the caller's jobs, exists, and holds latents
  [n, dim] of a float type: read from the file's header only (a few hundred bytes), never
  unpickled;
- the images it asks for fit a job's pixel bound at the source model's image side, when the
  source's spec states it (`shared.specs.sample_size`).

A path or an inversion in W (`space: "w"`) needs a stylegan2 source job.

The worker checks the same again when it reads the latents (worker/gan/latents.py), since an
artifact may be written again after submission; both use `shared.specs.latent_checks`.
Finding the artifact and reading its first bytes is shared with the images an inversion
names (`shared.jobs.artifact_refs`).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from shared.jobs.artifact_refs import owned_artifact, problem, stored_head
from shared.models import Artifact, User
from shared.specs import SampleSpec, SpecError
from shared.specs.data import DataSpec
from shared.specs.latent_checks import (
    MAX_LATENTS_NPY_BYTES,
    NPY_HEADER_BYTES,
    Problem,
    latents_array_problem,
    read_npy_header,
    vector_problems,
)
from shared.specs.sample import LatentsArtifact
from shared.specs.sample_size import sample_size_problem
from shared.storage import Storage

FIELD = "spec.latents"


def check_sample_size(spec: SampleSpec, trained: dict[str, Any]) -> None:
    """Raise SpecError naming the field when `spec` asks for more pixels than a job may draw
    from the generator the `trained` spec (JSON) describes; a side the spec does not state
    (images read as they come) is left to the worker."""
    try:
        shape = DataSpec.model_validate(trained.get("data")).sample_shape
    except ValidationError:  # a stored spec of an older form: the worker checks
        return
    if shape is None or len(shape) != 3:
        return
    problem = sample_size_problem(spec, shape[1])
    if problem is not None:
        raise SpecError([problem])


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


def check_latent_space(spec: SampleSpec, trained: dict[str, Any]) -> None:
    """Raise SpecError when the spec moves in W (`space: "w"`) and the source job's model
    (`trained`, its training spec) is not a stylegan2, whose mapping network makes w."""
    model = trained.get("model", {})
    family = model if isinstance(model, str) else model.get("family")
    if family == "stylegan2":
        return
    fields = [("spec.interpolation.space", spec.interpolation), ("spec.invert.space", spec.invert)]
    problems: list[Problem] = [
        {
            "path": path,
            "message": f"w is stylegan2's latent space; the source job trained {family} "
            "(use space z)",
        }
        for path, part in fields
        if part is not None and part.space == "w"
    ]
    if problems:
        raise SpecError(problems)


def _artifact_problem(
    session: Session, owner: User, artifact: LatentsArtifact, dim: int, store: Storage | None
) -> Problem | None:
    row = owned_artifact(session, owner, artifact, FIELD, ".npy", ".npy")
    if not isinstance(row, Artifact):
        return row
    if row.size > MAX_LATENTS_NPY_BYTES:
        message = f"{artifact.name} is {row.size:,} bytes, more than any valid latents array"
        return problem(f"{FIELD}.name", message)
    if store is None:
        return None
    head = stored_head(store, row, FIELD, NPY_HEADER_BYTES)
    if isinstance(head, dict):
        return head
    try:
        shape, dtype = read_npy_header(head)
    except ValueError as unreadable:
        return problem(f"{FIELD}.name", f"{artifact.name}: {unreadable}")
    array_problem = latents_array_problem(shape, dtype, dim)
    if array_problem is None:
        return None
    return problem(FIELD, f"{artifact.name} {array_problem}")
