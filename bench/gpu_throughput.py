"""Step throughput of one model at each precision, for `bench.gpu_check`: what the engine itself
reports (`ProgressReport`, every 10 steps, after a device sync), not a stopwatch around a run.

Each (model, precision) is one short training run with pictures and checkpoints only at its
end; its first report window (kernel selection, the allocator's first requests, data on its
first pass) is left out, and images per second are the rest's images over the rest's time.
A model whose spec the engine refuses (a family not in this checkout, a size it has no
layout for) is reported "not available", with the reason, and the check goes on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import torch
from pydantic import ValidationError

from bench.hooks import QuietHooks

PRECISIONS = ("fp32", "bf16", "fp16")
# The goal: a mixed-precision path at least this much faster than fp32.
GOAL_MIXED_OVER_FP32 = 1.5
# The engine reports every REPORT_EVERY (10) steps; the first window is warm-up.
WARMUP_STEPS = 10


@dataclass(frozen=True)
class ModelCase:
    """A model to time: its `model` spec, image side and latent size. A family that does not
    exist yet (stylegan2 before it lands) is listed all the same: its spec is refused at run
    time and the JSON says "not available" (so adding the family is adding its name here)."""

    name: str
    model: dict[str, Any]
    side: int
    latent_dim: int = 128


# 64 px is pytorch/examples' DCGAN (width 64); 128 px the issue's research size, for dcgan
# and the StyleGAN2-style family.
MODEL_CASES = (
    ModelCase("dcgan-64", {"family": "dcgan", "width": 64}, 64, latent_dim=100),
    ModelCase("dcgan-128", {"family": "dcgan", "width": 64}, 128),
    ModelCase("stylegan2-128", {"family": "stylegan2"}, 128),
)


@dataclass(frozen=True)
class RunSize:
    """How big each timed run is: the side overrides the case's (the CPU smoke's tiny runs)."""

    steps: int
    batch: int
    width: int | None = None  # None: the case's own
    side: int | None = None


class Recording(QuietHooks):
    """Hooks keeping the progress reports, the last checkpoint and the engine's log lines."""

    def __init__(self) -> None:
        self.reports: list[Any] = []
        self.checkpoint: bytes | None = None
        self.lines: list[str] = []

    def report_progress(self, report: Any) -> None:
        self.reports.append(report)

    def save_checkpoint(self, step: int, data: bytes) -> None:
        self.checkpoint = data

    def log(self, line: str) -> None:
        self.lines.append(line)


def case_spec(case: ModelCase, precision: str, size: RunSize, data: dict[str, Any]) -> Any:
    """The training spec of one timed run; ValueError (ValidationError is one) when the
    engine refuses it. Colour data, so no digit classifier trains beside the timing."""
    from shared.specs import TrainSpec
    from worker.gan.models import build_discriminator, build_generator

    model = dict(case.model)
    if size.width is not None and "width" in model:
        model["width"] = size.width
    side = size.side or case.side
    spec = TrainSpec.model_validate(
        {
            "model": model,
            "latent": {"dim": case.latent_dim},
            "data": {**data, "resize": side, "channels": 3},
            "train": {"steps": size.steps, "batch_size": size.batch, "seed": 0},
            "precision": precision,
            "checkpoint_every": size.steps,
            "sample_every": size.steps,
        }
    )
    build_generator(spec), build_discriminator(spec)  # a family with no builder fails here
    return spec


def availability(case: ModelCase, size: RunSize, data: dict[str, Any]) -> str | None:
    """None when the engine takes the case's spec, else why not (at the case's real side)."""
    from shared.specs import problems_from

    try:
        case_spec(case, "fp32", RunSize(size.steps, size.batch, size.width), data)
    except ValidationError as refused:
        reasons = "; ".join(f"{p['path']}: {p['message']}" for p in problems_from(refused))
        return f"not available: {reasons}"
    except (ValueError, KeyError) as refused:
        return f"not available: {refused}"
    return None


def timed_run(spec: Any, device: torch.device) -> tuple[dict[str, Any], bytes | None]:
    """One run's figures (images/s past the warm-up window, what it ran as) and checkpoint."""
    from worker.gan.precision import resolve_precision
    from worker.gan.step import memory_format_for
    from worker.gan.train import train

    hooks = Recording()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    began = time.perf_counter()
    train(spec, hooks=hooks, device=device)
    figures: dict[str, Any] = {
        "ran_as": resolve_precision(spec, device)[0].name,
        "memory_format": "channels_last"
        if memory_format_for(spec, device) == torch.channels_last
        else "contiguous",
        "run_seconds": round(time.perf_counter() - began, 2),
        **_rate(hooks.reports, spec.train.batch_size),
        **_loss_scaling(hooks.checkpoint),
    }
    if device.type == "cuda":
        figures["peak_memory_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
    return figures, hooks.checkpoint


def _rate(reports: list[Any], batch: int) -> dict[str, Any]:
    """Images per second over the report windows after the first."""
    windows = list(pairwise(reports))  # each ends at its later report, which timed it
    steps = sum(now.step - before.step for before, now in windows)
    seconds = sum(
        (now.step - before.step) * now.metrics["Timing/sec_per_step"] for before, now in windows
    )
    if steps == 0 or seconds <= 0:
        return {"unmeasured": f"fewer than {WARMUP_STEPS + 1} steps: no window past warm-up"}
    return {"images_per_second": round(steps * batch / seconds, 1), "steps_timed": steps}


def _loss_scaling(checkpoint: bytes | None) -> dict[str, Any]:
    """Whether the run scaled its losses (the engine's GradScaler, fp16 only), and the
    scale it ended on: read from the checkpoint, where the engine keeps the scaler's state."""
    if checkpoint is None:
        return {}
    from worker.gan.checkpoint import load_checkpoint

    scaler = (load_checkpoint(checkpoint).get("grad_scalers") or {}).get("g") or {}
    return {"loss_scaling": bool(scaler), **({"final_scale": scaler["scale"]} if scaler else {})}


def with_ratios(figures: dict[str, Any]) -> dict[str, Any]:
    """Each mixed precision's speed over fp32's, and whether the best meets the goal."""
    base = figures.get("fp32", {}).get("images_per_second")
    ratios = {}
    for precision in ("bf16", "fp16"):
        rate = figures.get(precision, {}).get("images_per_second")
        if base and rate and figures[precision]["ran_as"] == precision:
            ratios[precision] = figures[precision]["over_fp32"] = round(rate / base, 2)
    best = max(ratios.values(), default=None)
    figures["goal"] = {
        "mixed_over_fp32_at_least": GOAL_MIXED_OVER_FP32,
        "best_mixed_over_fp32": best,
        "met": best is not None and best >= GOAL_MIXED_OVER_FP32,
    }
    return figures
