"""A job request as a whole: its envelope (kind, name, spec), the spec model of each kind, and
the one function that validates a request and names every bad field by its JSON path."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictInt, ValidationError

from shared.specs.data import StrictModel
from shared.specs.errors import SpecError, problems_from
from shared.specs.labels import Note, Tags
from shared.specs.resources import ResourceSpec
from shared.specs.sample import SampleSpec
from shared.specs.script import ScriptSpec
from shared.specs.sweep import SweepSpec
from shared.specs.train import TrainSpec


class EvaluateSpec(StrictModel):
    """Score a checkpoint of one of your training jobs with the quality evaluators its data
    has (worker/gan/evaluation.py), as training does every `eval_every` steps: the figures
    become the job's `evaluation`, the picture its `evaluations/step-NNNNNN.png`."""

    job_id: Annotated[str, Field(min_length=1, max_length=64)]
    # None: the latest checkpoint of that job.
    step: Annotated[StrictInt | None, Field(ge=0)] = None
    resources: ResourceSpec = ResourceSpec()


# What a job of each kind runs from; `sample` and `evaluate` read a training job's checkpoint;
# `script` runs a researcher's own loop from their code bundle; `sweep` runs training children
# over a grid of spec fields and holds no devices itself (shared/sweeps/).
JobKind = Literal["train", "sample", "evaluate", "script", "sweep"]
# What a worker runs: every kind but `sweep`, which the scheduler runs through its children.
JobSpec = TrainSpec | SampleSpec | EvaluateSpec | ScriptSpec
RequestSpec = JobSpec | SweepSpec
CheckpointReader = SampleSpec | EvaluateSpec
SPEC_MODELS: dict[str, type[StrictModel]] = {
    "train": TrainSpec,
    "sample": SampleSpec,
    "evaluate": EvaluateSpec,
    "script": ScriptSpec,
    "sweep": SweepSpec,
}
# Kinds that run briefly on a trained checkpoint: the scheduler's short lane.
SHORT_KINDS = ("sample", "evaluate")


class JobRequest(StrictModel):
    """The envelope of POST /api/v1/jobs; `spec` is checked by `validate_job_request`.
    `tags` and `note` file the run with the others of its question (shared/specs/labels.py);
    PATCH /api/v1/jobs/<id> changes them later."""

    kind: JobKind
    name: Annotated[str, Field(min_length=1, max_length=200)]
    spec: dict[str, Any]
    tags: Tags = []
    note: Note = ""


def validate_job_request(body: Any) -> tuple[JobRequest, RequestSpec]:
    """Validate a request body; raise SpecError naming every bad field by its JSON path.

    Numbers and flags are strict types: `"10"`, `true` or `1000.0` where an integer belongs
    are errors, not coerced (a `"steps": true` that ran one step was a bug report)."""
    try:
        request = JobRequest.model_validate(body, strict=True)
    except ValidationError as exc:
        raise SpecError(problems_from(exc)) from None
    model = SPEC_MODELS[request.kind]
    try:
        spec = model.model_validate(request.spec)
    except ValidationError as exc:
        raise SpecError(problems_from(exc, prefix=("spec",), model=model)) from None
    if isinstance(spec, TrainSpec):
        check_cadences(spec)
    return request, spec  # type: ignore[return-value]


def check_cadences(spec: TrainSpec) -> None:
    """A cadence the request gives must fall within the run (the last step always gets a
    checkpoint and a grid, so a longer one is a typo); the defaults simply clip. Checked at
    submission only, so that specs stored before this rule still load."""
    problems = [
        {
            "path": f"spec.{name}",
            "message": f"{getattr(spec, name)} is more than train.steps ({spec.train.steps}); "
            f"the last step always gets one, so give at most {spec.train.steps}",
        }
        for name in ("checkpoint_every", "sample_every", "eval_every")
        if name in spec.model_fields_set and (getattr(spec, name) or 0) > spec.train.steps
    ]
    if problems:
        raise SpecError(problems)


def parse_spec(kind: str, spec: dict[str, Any]) -> JobSpec:
    """Rebuild the typed spec of a stored job (the worker's entry point)."""
    return SPEC_MODELS[kind].model_validate(spec)  # type: ignore[return-value]
