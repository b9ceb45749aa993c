"""What the training loop does around a model's step, for GANs and the VAE alike: the rank's
device, seeds and data, the fixed sample latents, DDP wrapping, running statistics, the
snapshots and their end-of-step schedule of reports, samples, checkpoints and the cooperative
stop, and the result. `Trainee` is what differs: each kind of model's networks and step.
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
from worker.gan.checkpoint import checkpoint_to_bytes
from worker.gan.data import BatchSource, open_data
from worker.gan.distributed import agree_to_stop, gather_to_rank0, min_across_ranks
from worker.gan.errors import NonFiniteLossError
from worker.gan.evaluation import RunEvaluation
from worker.gan.hooks import ProgressReport, TrainingHooks
from worker.gan.models import sample_kind
from worker.gan.priors import sample_latents
from worker.gan.sample import render_png
from worker.gan.sample_classes import class_columns
from worker.gan.seeding import (
    Stream,
    capture_rng_state,
    generator_for,
    restore_rng_state,
    seed_everything,
)
from worker.gan.step import STAT_NAMES

# Asking to stop costs an all-reduce, a device sync: every 10 steps keeps that well under 1%
# of a step's time, yet a cancel lands within a second even for slow image models.
STOP_CHECK_EVERY = 10
# Reading losses with `.item()` syncs the device; once per 10 steps is cheap and still fine
# grained enough for a live loss curve.
REPORT_EVERY = 10
# Latents behind every sample snapshot: an 8x8 image grid, or enough points to show how
# well each of the 8 ring modes is covered.
FIXED_SAMPLE_COUNTS = {"images": 64, "points": 1000}
# Stands for "no bad step yet" in the device-side NaN tracker (larger than any step).
_NO_BAD_STEP = 2**62
# Steps' statistics kept before they are folded even without a check: the loop checks every
# STOP_CHECK_EVERY steps, so this only bounds what a caller that never checks would hold.
_FOLD_AT_MOST = 64


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
        FIXED_SAMPLE_COUNTS[sample_kind(spec)],
        generator_for(spec.train.seed, Stream.FIXED_SAMPLES),
    )


def wrap_ddp(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` under DistributedDataParallel: gradients averaged, rank 0's weights copied."""
    device_ids = [device.index] if device.type == "cuda" and device.index is not None else None
    return DistributedDataParallel(module, device_ids=device_ids)


class Trainee(Protocol):
    """What one kind of model brings to the loop `train.train` runs for every spec: its
    networks and optimisers, its step, and what its reports and checkpoints hold. GANs and
    the VAE baseline each have one; data, seeding, DDP, resuming and the end-of-step schedule
    are the loop's, written once.
    """

    stat_names: tuple[str, ...]  # what `step` returns, in order
    checked: int  # how many of those, from the first, are losses to check for NaN
    batches_per_step: int  # batches each step trains on, per rank (for images per second)
    setting: str  # the end of the loop's first log line, e.g. ", loss hinge, fp32"
    note: str | None  # a line to log after it, when there is something to say

    def distribute(self) -> None:
        """Train through DDP wrappers from now on (world_size > 1)."""

    def restore(self, checkpoint: dict[str, Any]) -> int:
        """Load the checkpoint's weights and optimiser states; return its step."""

    def step(self, step: int) -> Tensor:
        """Train step `step` (1-based); return its `stat_names` values, on the device."""

    @property
    def sampler(self) -> nn.Module:
        """What samples and evaluations draw: the generator (G's average when kept)."""

    @property
    def critic(self) -> nn.Module | None:
        """The critic evaluation pictures show beside the samples, if the model has one."""

    def summary(self, metrics: dict[str, float]) -> str:
        """The losses part of a report's log line."""

    def checkpoint(
        self, step: int, fixed_latents: Tensor, rng_states: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """The checkpoint dict after `step` steps."""


class Snapshots:
    """What the loop hands to the hooks: reports, sample pictures, evaluations and
    checkpoints (rank 0 writes; every rank takes part in the gathers)."""

    def __init__(
        self,
        spec: TrainSpec,
        hooks: TrainingHooks,
        trainee: Trainee,
        fixed_latents: Tensor,
        device: torch.device,
        is_main: bool,
        evaluation: RunEvaluation | None,
    ) -> None:
        self.spec, self.hooks, self.trainee = spec, hooks, trainee
        self.fixed_latents, self.device, self.is_main = fixed_latents, device, is_main
        self.last_metrics: dict[str, float] = {}
        self.evaluation = evaluation

    def report(self, step: int, reading: tuple[dict[str, float], float]) -> None:
        """Rank 0 hands the means since the last report to the hooks; they are kept as the
        result's metrics should the run end here."""
        metrics, images_per_second = reading
        self.last_metrics = metrics
        total = self.spec.train.steps
        self.hooks.report_progress(ProgressReport(step, total, images_per_second, metrics))
        self.hooks.log(
            f"step {step}/{total}  {self.trainee.summary(metrics)}  {images_per_second:.1f} img/s"
        )

    def samples(self, step: int) -> None:
        """Rank 0 draws the generator on the fixed latents, in eval mode, in fp32."""
        if not self.is_main:
            return
        generator = self.trainee.sampler
        was_training = generator.training
        generator.eval()
        with torch.no_grad():
            generated = generator(self.fixed_latents.to(self.device))
        generator.train(was_training)
        columns = class_columns(self.spec)
        self.hooks.save_samples(step, render_png(self.spec, generated, columns))

    def evaluate(self, step: int) -> None:
        """Rank 0 scores the generator on the run's evaluation latents."""
        if self.evaluation is not None:
            self.evaluation(step, self.trainee.sampler, critic=self.trainee.critic)

    def checkpoint(self, step: int) -> None:
        """Every rank sends its RNG states to rank 0, which writes the checkpoint."""
        rng_states = gather_to_rank0(capture_rng_state(self.device))
        if not self.is_main or rng_states is None:
            return
        checkpoint = self.trainee.checkpoint(step, self.fixed_latents, rng_states)
        self.hooks.save_checkpoint(step, checkpoint_to_bytes(checkpoint))


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
    """Per-step statistics kept on the device; summed and checked for NaN in batches, read
    (one sync) only at report steps.

    `names` label the values `add` gets, in order; the first `checked` are losses, checked for
    NaN. A step only keeps its values: summing them and looking for a non-finite loss took
    half a dozen tiny device ops a step, 1-2% of a small MLP's step. They are folded into the
    sums, and the first non-finite step noted, when the loop checks (`raise_if_nonfinite`,
    every `STOP_CHECK_EVERY` steps and before any snapshot) or reads, so a NaN still stops
    the run before anything is saved from it, naming its step.
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
        self._pending: list[Tensor] = []  # values of consecutive steps, not yet folded
        self._first_pending = 0  # the step of _pending[0]
        self._reset()

    def _reset(self) -> None:
        self.sums = torch.zeros(len(self.names), device=self.device)
        self.steps, self.since = 0, time.perf_counter()

    def add(self, step: int, values: Tensor) -> None:
        if self._pending and step != self._first_pending + len(self._pending):
            self._fold()
        if not self._pending:
            self._first_pending = step
        self._pending.append(values)
        self.steps += 1
        if len(self._pending) >= _FOLD_AT_MOST:
            self._fold()

    def _fold(self) -> None:
        """Add the kept values to the sums and note their first non-finite step (no sync)."""
        if not self._pending:
            return
        rows = torch.stack(self._pending)
        self.sums += rows.sum(dim=0)
        bad = ~torch.isfinite(rows[:, : self.checked]).all(dim=1)
        steps = torch.arange(len(rows), device=self.device) + self._first_pending
        first_bad = torch.where(bad, steps, _NO_BAD_STEP).min()
        self.first_bad_step = torch.minimum(self.first_bad_step, first_bad)
        self._pending.clear()

    def raise_if_nonfinite(self) -> None:
        """Raise on every rank, naming the first bad step of any rank (a collective)."""
        self._fold()
        first_bad = int(min_across_ranks(self.first_bad_step).item())
        if first_bad != _NO_BAD_STEP:
            raise NonFiniteLossError(first_bad)

    def read(self) -> tuple[dict[str, float], float]:
        """Means since the last read, with timing; returns (metrics, images per second)."""
        self._fold()
        means = (self.sums / max(1, self.steps)).tolist()
        elapsed = max(time.perf_counter() - self.since, 1e-9)
        metrics = dict(zip(self.names, means, strict=True))
        metrics["Timing/sec_per_step"] = elapsed / max(1, self.steps)
        images_per_second = self.images_per_step * self.steps / elapsed
        self._reset()
        return metrics, images_per_second
