"""Job spec schemas (pydantic), used by the API to validate and by the worker to run.

A spec is the whole description of a job: same spec + same seed + same device type gives the
same weights and images. Every model forbids unknown fields, so a typo is an error that names
the field rather than a silently ignored option.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

# nz = 100 is the DCGAN default and what most papers and examples use for images.
DEFAULT_LATENT_DIM = 100
# Largest latent we accept: far beyond any published GAN, small enough to keep a typo
# (dim: 1000000) from allocating gigabytes on a shared node.
MAX_LATENT_DIM = 4096
# The devices one job may ask for: one node's worth.
MAX_DEVICES = 8
# One sampling job makes at most this many images: a 32x32 grid, still one readable PNG.
MAX_SEEDS = 1024

# Data keys are confined to the store's datasets/ area: a spec can never point a job at
# another job's artifacts, and no "..", spaces or odd characters reach a key.
_DATASET_KEY = re.compile(r"^datasets/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*/?)+$")

ModelFamily = Literal["mlp", "dcgan"]
LossName = Literal["non_saturating"]
PriorName = Literal["gaussian", "uniform"]
ToySource = Literal["toy:ring8"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Spec):
    """Which network family and how wide. `"model": "mlp"` is shorthand for `{"family": "mlp"}`."""

    family: ModelFamily
    # Hidden units (mlp) or base channel count (dcgan); None picks the family's default.
    width: Annotated[int | None, Field(ge=4, le=4096)] = None

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"family": value} if isinstance(value, str) else value


class LatentSpec(_Spec):
    """The prior z is drawn from, saved with every checkpoint and used by every sampling path."""

    dim: Annotated[int, Field(ge=1, le=MAX_LATENT_DIM)] = DEFAULT_LATENT_DIM
    prior: PriorName = "gaussian"


class DataSpec(_Spec):
    """Where the training data comes from.

    `toy:*` sources are generated in memory from the job seed. `mnist` reads the idx files
    (gzipped or not) from a local folder (`path`) or from an artifact-store key (`key`).
    """

    source: ToySource | Literal["mnist"]
    path: str | None = None
    key: str | None = None

    @model_validator(mode="after")
    def _location_matches_source(self) -> DataSpec:
        located = (self.path is not None) + (self.key is not None)
        if self.source.startswith("toy:") and located:
            raise ValueError(f"{self.source} is generated: give neither path nor key")
        if self.source == "mnist" and located != 1:
            raise ValueError("mnist needs exactly one of path (a folder) or key (in the store)")
        if self.key is not None and not _DATASET_KEY.match(self.key):
            raise ValueError(
                f"key must be a store prefix under datasets/ (letters, digits, . _ - /), got "
                f"{self.key!r}"
            )
        return self

    @property
    def is_image(self) -> bool:
        return self.source == "mnist"


class TrainParams(_Spec):
    steps: Annotated[int, Field(ge=1, le=10_000_000)] = 2000
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 64
    # Adam(2e-4, betas=(0.5, 0.999)): the DCGAN paper's settings, good for both families here.
    lr: Annotated[float, Field(gt=0, le=1)] = 2e-4
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (
        0.5,
        0.999,
    )
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0


class ResourceSpec(_Spec):
    devices: Annotated[int, Field(ge=1, le=MAX_DEVICES)] = 1
    # auto: CUDA when the node has it, else CPU.
    device_type: Literal["auto", "cpu", "cuda"] = "auto"


class TrainSpec(_Spec):
    model: ModelSpec
    latent: LatentSpec = LatentSpec()
    loss: LossName = "non_saturating"
    data: DataSpec
    train: TrainParams = TrainParams()
    # Steps between checkpoints / sample grids; the last step always gets both.
    checkpoint_every: Annotated[int, Field(ge=1)] = 500
    sample_every: Annotated[int, Field(ge=1)] = 250
    resources: ResourceSpec = ResourceSpec()

    @model_validator(mode="after")
    def _family_fits_data(self) -> TrainSpec:
        if self.model.family == "dcgan" and not self.data.is_image:
            raise ValueError(f"model dcgan needs image data; {self.data.source} is points")
        if self.model.family == "mlp" and self.data.is_image:
            raise ValueError(f"model mlp needs point data; {self.data.source} is images")
        return self


class SampleSpec(_Spec):
    """Images from a trained generator: one per seed, in the order given."""

    job_id: Annotated[str, Field(min_length=1, max_length=64)]
    # None: the latest checkpoint of that job.
    step: Annotated[int | None, Field(ge=0)] = None
    seeds: Annotated[list[Annotated[int, Field(ge=0, le=2**63 - 1)]], Field(min_length=1)]
    resources: ResourceSpec = ResourceSpec()

    @field_validator("seeds")
    @classmethod
    def _not_too_many(cls, seeds: list[int]) -> list[int]:
        if len(seeds) > MAX_SEEDS:
            raise ValueError(f"at most {MAX_SEEDS} seeds per sampling job, got {len(seeds)}")
        return seeds


JobKind = Literal["train", "sample"]
SPEC_MODELS: dict[str, type[_Spec]] = {"train": TrainSpec, "sample": SampleSpec}


class JobRequest(_Spec):
    """The envelope of POST /api/v1/jobs; `spec` is checked by `validate_job_request`."""

    kind: JobKind
    name: Annotated[str, Field(min_length=1, max_length=200)]
    spec: dict[str, Any]


class SpecError(ValueError):
    """A job request is invalid; `problems` lists each bad field as {path, message}."""

    def __init__(self, problems: list[dict[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{p['path']}: {p['message']}" for p in problems))


def validate_job_request(body: Any) -> tuple[JobRequest, TrainSpec | SampleSpec]:
    """Validate a request body; raise SpecError naming every bad field by its JSON path."""
    try:
        request = JobRequest.model_validate(body)
    except ValidationError as exc:
        raise SpecError(problems_from(exc)) from None
    try:
        spec = SPEC_MODELS[request.kind].model_validate(request.spec)
    except ValidationError as exc:
        raise SpecError(problems_from(exc, prefix=("spec",))) from None
    return request, spec  # type: ignore[return-value]


def problems_from(exc: ValidationError, prefix: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """Turn pydantic's errors into {path, message} pairs a person can act on."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in (*prefix, *error["loc"])]
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        problems.append({"path": ".".join(loc) or "(body)", "message": message})
    return problems


def parse_spec(kind: str, spec: dict[str, Any]) -> TrainSpec | SampleSpec:
    """Rebuild the typed spec of a stored job (the worker's entry point)."""
    return SPEC_MODELS[kind].model_validate(spec)  # type: ignore[return-value]
