"""Arithmetic precision of a training run: autocast dtype, loss scaling, the CPU fallback.

Weights, optimiser states and the generator average stay fp32 whatever the precision; only
the forward passes run in bf16 or fp16 under autocast. fp16's narrow range needs loss scaling
(`torch.amp.GradScaler`), which skips a step whose gradients overflowed and lowers the
scale: such skips are normal, and only a non-finite loss value stops a run.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

from shared.specs import TrainSpec

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """How a run computes on a device type: "fp32", "bf16" or "fp16"."""

    name: str
    device_type: str

    def autocast(self) -> AbstractContextManager[object]:
        """The context the forward passes and losses run in: autocast, or nothing for fp32."""
        if self.name not in _AUTOCAST_DTYPES:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=_AUTOCAST_DTYPES[self.name])

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A loss scaler for one network's optimiser: enabled for fp16, a pass-through else."""
        return torch.amp.GradScaler(self.device_type, enabled=self.name == "fp16")


def resolve_precision(spec: TrainSpec, device: torch.device) -> tuple[Precision, str | None]:
    """The precision a run of `spec` uses on `device`, and a line to log when it is not the spec's.

    On a GPU the spec's precision runs as asked. On the CPU, bf16 runs when the spec asked for
    the CPU itself; otherwise (device_type "auto" on a node without a GPU) mixed precision was
    meant for a GPU, and the run falls back to fp32. Validation has already refused fp16 with
    device_type "cpu".
    """
    wanted = spec.precision
    if device.type == "cuda" or wanted == "fp32":
        return Precision(wanted, device.type), None
    if wanted == "bf16" and spec.resources.device_type == "cpu":
        return Precision(wanted, device.type), None
    note = f"precision {wanted} needs a GPU and none is in use: running fp32 on the {device.type}"
    return Precision("fp32", device.type), note
