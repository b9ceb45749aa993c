"""The spec of a script job (`ScriptSpec`): a researcher's own training loop, run by ganforge.

`code` names one of their code bundles, `entrypoint` the function in it (`pkg.module:main`),
called once per rank with `args`. Inside, `worker.runtime` gives the rank, world size and
device (torch.distributed is set up for the gang), and hands progress, logs, checkpoints,
samples, artifacts and a generator to the service (see worker/runtime.py). `steps`, when
given, is how many steps the loop means to run: the job's progress and ETA count against it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field, StrictInt, field_validator

from shared.specs.custom_model import CLASS_PATH, MAX_CLASS_PATH_LENGTH, check_code_id
from shared.specs.data import StrictModel
from shared.specs.resources import ResourceSpec

# A loop's own options (a config file's worth), small next to the request body's cap.
MAX_SCRIPT_ARGS_JSON_BYTES = 64 * 1024


class ScriptSpec(StrictModel):
    code: str
    entrypoint: str
    args: dict[str, Any] = Field(default_factory=dict)
    steps: Annotated[StrictInt | None, Field(ge=1, le=10**9)] = None
    resources: ResourceSpec = ResourceSpec()

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        return check_code_id(value)

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint(cls, value: str) -> str:
        if len(value) > MAX_CLASS_PATH_LENGTH or not CLASS_PATH.fullmatch(value):
            raise ValueError(
                f"must name a function in the bundle as 'dotted.module:function' (at most "
                f"{MAX_CLASS_PATH_LENGTH} characters), e.g. 'mygan.train:main'"
            )
        return value

    @field_validator("args")
    @classmethod
    def _args(cls, value: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(value, separators=(",", ":")).encode())
        if size > MAX_SCRIPT_ARGS_JSON_BYTES:
            raise ValueError(f"at most {MAX_SCRIPT_ARGS_JSON_BYTES} bytes as JSON, got {size}")
        return value
