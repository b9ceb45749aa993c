from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from gan_testing import RecordingHooks, mnist_spec, ring_spec

from shared.specs import SpecError, TrainSpec, validate_job_request
from worker.gan import train as train_module
from worker.gan import train_common as loop_module
from worker.gan.errors import NonFiniteLossError
from worker.gan.precision import Precision, resolve_precision
from worker.gan.train import train
from worker.gan.train_common import STOP_CHECK_EVERY

CPU = torch.device("cpu")


def _force_precision(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Run the loop at `name` on the CPU whatever the spec says (CPU autocast has fp16 too)."""
    monkeypatch.setattr(
        train_module, "resolve_precision", lambda spec, device: (Precision(name, "cpu"), None)
    )


def test_fp16_on_the_cpu_is_refused_when_the_job_is_submitted() -> None:
    body = {
        "kind": "train",
        "name": "x",
        "spec": {
            "model": "mlp",
            "data": {"source": "toy:ring8"},
            "precision": "fp16",
            "resources": {"device_type": "cpu"},
        },
    }
    with pytest.raises(SpecError, match="precision fp16 needs a GPU"):
        validate_job_request(body)
    body["spec"]["resources"] = {"device_type": "auto"}
    validate_job_request(body)


def test_mixed_precision_meant_for_a_gpu_runs_fp32_on_the_cpu_and_says_so() -> None:
    for wanted in ("fp16", "bf16"):
        precision, note = resolve_precision(ring_spec(precision=wanted), CPU)
        assert precision == Precision("fp32", "cpu")
        assert note == f"precision {wanted} needs a GPU and none is in use: running fp32 on the cpu"
    hooks = RecordingHooks()
    train(ring_spec(precision="fp16", train={"steps": 2, "batch_size": 8}), hooks=hooks)
    assert hooks.lines[0].endswith("fp32")
    assert hooks.lines[1].startswith("precision fp16 needs a GPU")


def test_bf16_asked_for_on_the_cpu_runs_under_cpu_autocast() -> None:
    spec = ring_spec(precision="bf16", resources={"device_type": "cpu"})
    assert resolve_precision(spec, CPU) == (Precision("bf16", "cpu"), None)
    with Precision("bf16", "cpu").autocast():
        assert torch.nn.Linear(2, 2)(torch.randn(3, 2)).dtype == torch.bfloat16
    hooks = RecordingHooks()
    train(spec, hooks=hooks)
    assert hooks.lines[0].endswith("bf16")
    assert all(math.isfinite(value) for value in hooks.reports[-1].metrics.values())


@pytest.mark.slow  # trains for seconds: in `make test`, not `make test-fast`
def test_fp16_keeps_its_loss_scales_in_checkpoints_and_resumes_bitwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _force_precision(monkeypatch, "fp16")
    spec = mnist_spec(loss="wgan_gp", train={"steps": 12, "batch_size": 8, "ema_decay": 0.9})
    whole = RecordingHooks()
    train(spec, hooks=whole)
    stopping = RecordingHooks(stop_at_check=1)
    train(spec, hooks=stopping)
    resumed = RecordingHooks()
    train(spec, hooks=resumed, resume=stopping.last_checkpoint)
    scalers: dict[str, Any] = whole.last_checkpoint["grad_scalers"]
    assert set(scalers) == {"g", "d"} and scalers["d"]["scale"] > 0
    assert stopping.last_checkpoint["step"] == STOP_CHECK_EVERY
    assert resumed.last_checkpoint["grad_scalers"] == scalers
    for key in ("generator", "discriminator", "generator_ema", "d_optimizer"):
        for name, tensor in whole.last_checkpoint[key].items():
            if isinstance(tensor, torch.Tensor):
                assert torch.equal(tensor, resumed.last_checkpoint[key][name]), (key, name)


def test_a_nan_loss_under_fp16_still_stops_the_run_naming_the_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _force_precision(monkeypatch, "fp16")
    real_open = loop_module.open_data

    class Poisoned:
        def __init__(self, *args: Any) -> None:
            self.source = real_open(*args)
            self.batch_size = self.source.batch_size

        def batch(self, step: int) -> torch.Tensor:
            batch = self.source.batch(step)
            return batch * float("nan") if step == 6 else batch

    monkeypatch.setattr(loop_module, "open_data", Poisoned)
    with pytest.raises(NonFiniteLossError, match="at step 6"):
        train(ring_spec(loss="hinge"), hooks=RecordingHooks())


def test_precision_is_part_of_the_spec_and_defaults_to_fp32() -> None:
    spec = TrainSpec.model_validate({"model": "mlp", "data": {"source": "toy:ring8"}})
    assert spec.precision == "fp32"
    assert ring_spec(precision="bf16").precision == "bf16"
