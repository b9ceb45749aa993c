"""Job spec schemas (pydantic), used by the API to validate and by the worker to run.

A spec is the whole description of a job: same spec + same seed + same device type gives the
same weights and images. Every model forbids unknown fields, so a typo is an error that names
the field rather than a silently ignored option. One module per part:

- `request`: the envelope of POST /api/v1/jobs, the spec model of each kind, validation;
- `train`: `TrainSpec` (model, latent, loss, optimisation, cadences);
- `data`: where training samples come from; `resources`: what a job needs from the pool;
- `script`: `ScriptSpec`, a researcher's own loop from their code bundle;
- `sweep`: `SweepSpec`, a base training spec run over a grid and random draws;
- `sample`: `SampleSpec` and the latent-space tools; `inversion`: the `invert` mode;
- `latent_checks`: whether given latents fit a generator; `errors`: `SpecError`, each bad
  field by its JSON path.
"""

from shared.specs.errors import SpecError, problems_from
from shared.specs.model import ModelFamily
from shared.specs.request import (
    SHORT_KINDS,
    SPEC_MODELS,
    CheckpointReader,
    EvaluateSpec,
    JobKind,
    JobRequest,
    JobSpec,
    RequestSpec,
    check_cadences,
    parse_spec,
    validate_job_request,
)
from shared.specs.sample import SampleSpec
from shared.specs.script import ScriptSpec
from shared.specs.sweep import SweepSpec
from shared.specs.train import LatentSpec, LossName, LossSpec, TrainSpec

__all__ = [
    "SHORT_KINDS",
    "SPEC_MODELS",
    "CheckpointReader",
    "EvaluateSpec",
    "JobKind",
    "JobRequest",
    "JobSpec",
    "LatentSpec",
    "LossName",
    "LossSpec",
    "ModelFamily",
    "RequestSpec",
    "SampleSpec",
    "ScriptSpec",
    "SpecError",
    "SweepSpec",
    "TrainSpec",
    "check_cadences",
    "parse_spec",
    "problems_from",
    "validate_job_request",
]
