"""What every training loop (GAN and VAE) does around its step: the rank's device, seeds and
data, the fixed sample latents, DDP wrapping, running statistics, the end-of-step schedule of
reports, samples, checkpoints and the cooperative stop, and the result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from shared.specs import TrainSpec
from worker.gan.data import BatchSource, open_data
from worker.gan.distributed import agree_to_stop, min_across_ranks
from worker.gan.errors import NonFiniteLossError
from worker.gan.hooks import TrainingHooks
from worker.gan.models import network_family
from worker.gan.priors import sample_latents
from worker.gan.seeding import Stream, generator_for, restore_rng_state, seed_everything
from worker.gan.step import STAT_NAMES

# Asking to stop costs an all-reduce, a device sync: every 10 steps keeps that well under 1%
# of a step's time, yet a cancel lands within a second even for slow image models.
STOP_CHECK_EVERY = 10
# Reading losses with `.item()` syncs the device; once per 10 steps is cheap and still fine
# grained enough for a live loss curve.
REPORT_EVERY = 10
# Latents behind every sample snapshot: an 8x8 image grid, or enough points to show how
# well each of the 8 ring modes is covered.
FIXED_SAMPLE_COUNTS = {"dcgan": 64, "mlp": 1000}
# Stands for "no bad step yet" in the device-side NaN tracker (larger than any step).
_NO_BAD_STEP = 2**62


@dataclass(frozen=True)
class TrainResult:
    """Where training ended, and the metrics of the last report."""

    step: int
    stopped_early: bool
    metrics: dict[str, float] = field(default_factory=dict)


def open_rank(
    spec: TrainSpec, rank: int, world_size: int, device: torch.device, data_path: Path | None
) -> BatchSource:
    """Section 1 of every loop: select the device, seed this rank, open its share of the data."""
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)  # NCCL's object collectives use the current device
    seed_everything(spec.train.seed, rank)
    return open_data(spec, data_path, rank, world_size)


def fixed_sample_latents(spec: TrainSpec) -> Tensor:
    """The latents every sample snapshot draws, the same on every rank and every resume."""
    return sample_latents(
        spec.latent,
        FIXED_SAMPLE_COUNTS[network_family(spec)],
        generator_for(spec.train.seed, Stream.FIXED_SAMPLES),
    )


def wrap_ddp(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` under DistributedDataParallel: gradients averaged, rank 0's weights copied."""
    device_ids = [device.index] if device.type == "cuda" and device.index is not None else None
    return DistributedDataParallel(module, device_ids=device_ids)


class Snapshots(Protocol):
    """A loop's reports, sample pictures and checkpoints (rank 0 writes; all ranks gather)."""

    last_metrics: dict[str, float]

    def report(self, step: int, reading: tuple[dict[str, float], float]) -> None: ...

    def samples(self, step: int) -> None: ...

    def checkpoint(self, step: int) -> None: ...

    def evaluate(self, step: int) -> None: ...


def end_of_step(
    step: int,
    spec: TrainSpec,
    stats: RunningStats,
    snapshot: Snapshots,
    hooks: TrainingHooks,
    device: torch.device,
    is_main: bool,
) -> TrainResult | None:
    """Check for NaN, report, draw, checkpoint and agree whether to stop, on the schedule the
    spec sets; returns the result when the run stops early on request."""
    is_last = step == spec.train.steps
    checks_stop = step % STOP_CHECK_EVERY == 0 and not is_last
    saves = is_last or step % spec.checkpoint_every == 0
    draws = is_last or step % spec.sample_every == 0
    reports = is_last or step % REPORT_EVERY == 0
    evaluates = is_last or step % spec.evaluation_every == 0
    if not (checks_stop or saves or draws or reports or evaluates):
        return None
    stats.raise_if_nonfinite()
    if reports and is_main:
        snapshot.report(step, stats.read())
    if draws and is_main:
        snapshot.samples(step)
    if evaluates and is_main:
        snapshot.evaluate(step)
    if saves:
        snapshot.checkpoint(step)
    if checks_stop and agree_to_stop(hooks.should_stop(), device):
        if not saves:
            snapshot.checkpoint(step)
        if is_main:
            hooks.log(f"stopped on request after step {step}; checkpoint saved")
        return TrainResult(step=step, stopped_early=True, metrics=snapshot.last_metrics)
    return None


def restore_rank_rng(
    states: list[dict[str, Any]], rank: int, world_size: int, device: torch.device
) -> None:
    """Restore this rank's RNGs; a run resumed on another rank count keeps its fresh seeds."""
    if len(states) == world_size:
        restore_rng_state(states[rank], device)


class RunningStats:
    """Per-step statistics summed on the device; read (one sync) only at report steps.

    `names` label the values `add` gets, in order; the first `checked` are losses, checked for
    NaN.
    """

    def __init__(
        self,
        device: torch.device,
        images_per_step: int,
        names: tuple[str, ...] = STAT_NAMES,
        checked: int = 2,
    ):
        self.device, self.images_per_step, self.names = device, images_per_step, names
        self.checked = checked
        self.first_bad_step = torch.tensor(_NO_BAD_STEP, device=device)
        self._reset()

    def _reset(self) -> None:
        self.sums = torch.zeros(len(self.names), device=self.device)
        self.steps, self.since = 0, time.perf_counter()

    def add(self, step: int, values: Tensor) -> None:
        self.sums += values
        self.steps += 1
        bad = ~torch.isfinite(values[: self.checked]).all()
        self.first_bad_step = torch.where(bad, step, self.first_bad_step).minimum(
            self.first_bad_step
        )

    def raise_if_nonfinite(self) -> None:
        """Raise on every rank, naming the first bad step of any rank (a collective)."""
        first_bad = int(min_across_ranks(self.first_bad_step).item())
        if first_bad != _NO_BAD_STEP:
            raise NonFiniteLossError(first_bad)

    def read(self) -> tuple[dict[str, float], float]:
        """Means since the last read, with timing; returns (metrics, images per second)."""
        means = (self.sums / max(1, self.steps)).tolist()
        elapsed = max(time.perf_counter() - self.since, 1e-9)
        metrics = dict(zip(self.names, means, strict=True))
        metrics["Timing/sec_per_step"] = elapsed / max(1, self.steps)
        images_per_second = self.images_per_step * self.steps / elapsed
        self._reset()
        return metrics, images_per_second
