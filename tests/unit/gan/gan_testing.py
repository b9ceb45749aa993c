"""Helpers shared by the GAN tests: recording hooks, tiny spec factories, a ranked runner.

A plain module (not conftest) so `torch.multiprocessing.spawn` children can import it.
"""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from shared.specs import TrainSpec
from tests.helpers import MNIST_DIR
from worker.gan.checkpoint import load_checkpoint
from worker.gan.distributed import leave_without_finalizers, process_group
from worker.gan.hooks import ProgressReport
from worker.gan.plugins import register_bundle
from worker.gan.train import train
from worker.gan.train_common import STOP_CHECK_EVERY

# Code bundles the plugin tests train (tests/data/bundles/<name>/).
BUNDLES_DIR = Path(__file__).resolve().parents[2] / "data" / "bundles"

# What RecordingHooks.cached keeps: one copy for the whole test session.
_SESSION_CACHE: dict[str, bytes] = {}


# An MNIST image and the grid padding: one cell of a sample grid.
CELL = 28 + 2


@dataclass
class RecordingHooks:
    """Hooks that remember every call; `stop_at_check` says True from that stop check on."""

    stop_at_check: int | None = None
    stop_checks: int = 0
    reports: list[ProgressReport] = field(default_factory=list)
    checkpoints: list[tuple[int, bytes]] = field(default_factory=list)
    samples: list[tuple[int, bytes]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    evaluations: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    pictures: list[tuple[int, bytes]] = field(default_factory=list)
    warnings: list[tuple[str, bool]] = field(default_factory=list)
    # (kind, began: True / ended: False, message), in order.
    warning_events: list[tuple[str, bool, str]] = field(default_factory=list)

    def should_stop(self) -> bool:
        self.stop_checks += 1
        if any(stop for _, stop in self.warnings):
            return True
        return self.stop_at_check is not None and self.stop_checks >= self.stop_at_check

    def report_evaluation(self, step: int, metrics: dict[str, Any], png: bytes | None) -> None:
        self.evaluations.append((step, metrics))
        if png is not None:
            self.pictures.append((step, png))

    def warn(self, message: str, stop: bool, kind: str = "collapse") -> None:
        self.warnings.append((message, stop))
        self.warning_events.append((kind, True, message))

    def end_warning(self, kind: str, message: str) -> None:
        self.warning_events.append((kind, False, message))

    def cached(self, name: str, make: Callable[[], bytes]) -> bytes:
        """Kept for the whole test session: the digit classifier trains once."""
        if name not in _SESSION_CACHE:
            _SESSION_CACHE[name] = make()
        return _SESSION_CACHE[name]

    def report_progress(self, report: ProgressReport) -> None:
        self.reports.append(report)

    def save_checkpoint(self, step: int, data: bytes) -> None:
        self.checkpoints.append((step, data))

    def save_samples(self, step: int, png: bytes) -> None:
        self.samples.append((step, png))

    def log(self, line: str) -> None:
        self.lines.append(line)

    @property
    def last_checkpoint(self) -> dict[str, Any]:
        return load_checkpoint(self.checkpoints[-1][1])


def ring_spec(**overrides: Any) -> TrainSpec:
    """An mlp on ring8 small enough to train 30 steps in well under a second."""
    spec: dict[str, Any] = {
        "model": {"family": "mlp", "width": 16},
        "data": {"source": "toy:ring8"},
        "latent": {"dim": 4},
        "train": {"steps": 30, "batch_size": 32, "seed": 7},
        "checkpoint_every": 20,
        "sample_every": 15,
    }
    spec.update(overrides)
    return TrainSpec.model_validate(spec)


def mnist_spec(**overrides: Any) -> TrainSpec:
    """A narrow dcgan on the MNIST test set, a handful of steps."""
    spec: dict[str, Any] = {
        "model": {"family": "dcgan", "width": 4},
        "data": {"source": "mnist", "path": str(MNIST_DIR)},
        "latent": {"dim": 8},
        "train": {"steps": 12, "batch_size": 8, "seed": 3},
        "checkpoint_every": 10,
        "sample_every": 5,
    }
    spec.update(overrides)
    return TrainSpec.model_validate(spec)


def registered_bundle(folder: Path, files: dict[str, str] | None = None) -> str:
    """Register `folder` as a code bundle (first writing `files`, name -> source, into it) and
    return its id: the SHA-256 of the folder's path, one id per folder as uploads have."""
    for name, source in (files or {}).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    code = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()
    register_bundle(code, folder)
    return code


def custom_ring_spec(code: str, module: str, **overrides: Any) -> TrainSpec:
    """`ring_spec` with a custom model: `module`'s Generator and Discriminator from bundle
    `code`; `model` in `overrides` adds to (or replaces) the model's fields."""
    model = {
        "family": "custom",
        "code": code,
        "generator": f"{module}:Generator",
        "discriminator": f"{module}:Discriminator",
        **overrides.pop("model", {}),
    }
    return ring_spec(model=model, **overrides)


def run_two_ranks_with_resume(
    rank: int, world_size: int, port: int, spec_jsons: list[str], out: str, stop_rank: int
) -> None:
    """Spawn target: per spec, an uninterrupted run, then a stopped one and its resumption.

    Only `stop_rank` asks to stop, so the stop must be agreed across ranks. Rank 0 writes
    the final checkpoints of both runs to `out` as `{index}-whole.pt` / `{index}-resumed.pt`.
    """
    torch.set_num_threads(1)
    folder = Path(out)
    with process_group(rank, world_size, port, "gloo"):
        for index, spec_json in enumerate(spec_jsons):
            spec = TrainSpec.model_validate_json(spec_json)
            whole = RecordingHooks()
            train(spec, hooks=whole, rank=rank, world_size=world_size)
            stopping = RecordingHooks(stop_at_check=1 if rank == stop_rank else None)
            stopped = train(spec, hooks=stopping, rank=rank, world_size=world_size)
            assert stopped.stopped_early and stopped.step == STOP_CHECK_EVERY
            if rank == 0:
                (folder / f"{index}-stopped.pt").write_bytes(stopping.checkpoints[-1][1])
            torch.distributed.barrier()
            resume = load_checkpoint((folder / f"{index}-stopped.pt").read_bytes())
            resumed = RecordingHooks()
            train(spec, hooks=resumed, rank=rank, world_size=world_size, resume=resume)
            if rank == 0:
                (folder / f"{index}-whole.pt").write_bytes(whole.checkpoints[-1][1])
                (folder / f"{index}-resumed.pt").write_bytes(resumed.checkpoints[-1][1])
    leave_without_finalizers()


def stop_then_resume(spec: TrainSpec) -> tuple[RecordingHooks, RecordingHooks]:
    """An unbroken run of `spec`, and one stopped at the first stop check and resumed from
    its checkpoint: their hooks, for comparing how each ended."""
    whole = RecordingHooks()
    train(spec, hooks=whole)
    stopping = RecordingHooks(stop_at_check=1)
    assert train(spec, hooks=stopping).step == STOP_CHECK_EVERY
    resumed = RecordingHooks()
    result = train(spec, hooks=resumed, resume=stopping.last_checkpoint)
    assert (result.step, result.stopped_early) == (spec.train.steps, False)
    return whole, resumed


def trained_checkpoint(spec: TrainSpec) -> dict[str, Any]:
    """Train `spec` in-process and return its last checkpoint."""
    from worker.gan.train import train

    hooks = RecordingHooks()
    train(spec, hooks=hooks)
    return hooks.last_checkpoint  # type: ignore[no-any-return]


def assert_bitwise_equal(a: Any, b: Any) -> None:
    """Nested containers equal, tensors compared bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_bitwise_equal(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_bitwise_equal(x, y)
    else:
        assert a == b
