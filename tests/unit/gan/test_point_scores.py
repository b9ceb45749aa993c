"""Point data without known modes (uploads, .npz files): the points held back from training
are never trained on, and evaluations score the generator against them with precision,
recall, density and coverage (worker/gan/point_scores.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from gan_testing import RecordingHooks
from torch import Tensor, nn

from shared.specs import TrainSpec
from tests.data_builders import write_npz
from worker.gan.data import (
    HELD_BACK_MAX,
    held_back_count,
    held_back_split,
    open_data,
    resolve_data,
)
from worker.gan.evaluation import RunEvaluation, evaluate_checkpoint, needs_data
from worker.gan.point_scores import EVAL_DRAWS
from worker.gan.train import train

DATASET_ID = "0123456789abcdef0123456789abcdef"
CENTRES = np.array([[-2.0, 0.0], [2.0, 0.0], [0.0, 3.0]], dtype=np.float32)
FIGURES = ("precision", "recall", "density", "coverage")


def three_clusters(count: int, seed: int = 0) -> np.ndarray:
    """`count` points, a third around each of three centres (std 0.1), shuffled."""
    rng = np.random.default_rng(seed)
    which = rng.permutation(np.arange(count) % 3)
    return (CENTRES[which] + 0.1 * rng.standard_normal((count, 2))).astype(np.float32)


def upload(tmp_path: Path, points: np.ndarray) -> Path:
    """The folder a worker fetches an upload into: the one .npz the user sent."""
    folder = tmp_path / "data"
    folder.mkdir()
    write_npz(folder / "clusters.npz", points=points)
    return folder


def upload_spec(batch_size: int = 64, **changes: Any) -> TrainSpec:
    return TrainSpec.model_validate(
        {
            "model": {"family": "mlp", "width": 16},
            "latent": {"dim": 4},
            "data": {"source": "dataset", "dataset_id": DATASET_ID, "shape": [2]},
            "train": {"steps": 4, "batch_size": batch_size, "seed": 5},
            "checkpoint_every": 4,
            "sample_every": 4,
            **changes,
        }
    )


class OnClusters(nn.Module):
    """A fixed 'generator' that puts its samples on the first `clusters` of the centres."""

    def __init__(self, clusters: int) -> None:
        super().__init__()
        self.centres = torch.from_numpy(CENTRES[:clusters])
        self.bias = nn.Parameter(torch.zeros(2))  # a parameter, as a generator has

    def forward(self, z: Tensor) -> Tensor:
        # Equal shares: the normal CDF of z's first coordinate, cut into len(centres) bins.
        cuts = torch.linspace(0, 1, 1 + len(self.centres))[1:-1]
        which = torch.bucketize(torch.special.ndtr(z[:, 0]), cuts)
        return self.centres[which] + 0.1 * z[:, 1:3] + self.bias


def test_a_fifth_is_held_back_at_most_2000_and_never_below_a_batch_of_training() -> None:
    assert held_back_count(3000, 64) == 600
    assert held_back_count(50_000, 64) == HELD_BACK_MAX
    assert held_back_count(400, 64) == 0  # 80 would be too few to score against
    assert held_back_count(600, 512) == 0  # 480 left would not fill a batch of 512
    training, held = held_back_split(3000, 64)
    assert len(held) == 600 and len(training) == 2400
    assert set(training.tolist()).isdisjoint(held.tolist())
    assert sorted(training.tolist() + held.tolist()) == list(range(3000))
    # Fixed by the data's size alone: every job on one upload holds back the same points.
    assert torch.equal(held_back_split(3000, 256)[1], held)


def test_training_never_serves_a_held_back_point(tmp_path: Path) -> None:
    points = three_clusters(1000)
    folder = upload(tmp_path, points)
    spec = upload_spec(batch_size=50)
    training, held = held_back_split(len(points), 50)
    source = open_data(spec, folder, rank=0, world_size=1)
    served = torch.cat([source.batch(step) for step in range(1, 3 * 800 // 50 + 1)])  # 3 epochs
    rows = {tuple(row) for row in served.tolist()}
    assert rows == {tuple(row) for row in torch.from_numpy(points)[training].tolist()}
    assert rows.isdisjoint(tuple(row) for row in torch.from_numpy(points)[held].tolist())


def test_an_upload_on_three_clusters_drawn_on_two_has_coverage_well_below_one(
    tmp_path: Path,
) -> None:
    folder = upload(tmp_path, three_clusters(3000))
    spec = upload_spec()
    assert needs_data(spec)  # an evaluate job fetches the upload for its held-back points
    hooks = RecordingHooks()
    evaluation = RunEvaluation(spec, hooks, torch.device("cpu"), folder)
    two = evaluation(4, OnClusters(2))
    three = evaluation(8, OnClusters(3))
    assert [step for step, _ in hooks.evaluations] == [4, 8]
    assert two["points_coverage"] == pytest.approx(2 / 3, abs=0.06)
    assert two["points_coverage_interval"][1] < 0.8
    assert two["points_recall"] < 0.8
    assert two["points_precision"] > 0.9  # what it draws looks real; it misses a cluster
    assert three["points_coverage"] > 0.9 and three["points_recall"] > 0.9
    assert three["points_precision"] > 0.9
    for metrics in (two, three):
        assert metrics["points_held_out"] == 600
        assert metrics["points_draws"] == EVAL_DRAWS
        assert metrics["points_samples"] == EVAL_DRAWS * 600
        for name in FIGURES:
            (low, high), value = metrics[f"points_{name}_interval"], metrics[f"points_{name}"]
            assert low <= value <= high, name
    assert "modes_covered" not in two  # no known modes: no mode figures


def test_a_training_run_on_an_npz_reports_the_figures_and_an_evaluate_job_repeats_them(
    tmp_path: Path,
) -> None:
    path = write_npz(tmp_path / "clusters.npz", data=three_clusters(1000))
    spec = resolve_data(
        TrainSpec.model_validate(
            {
                "model": {"family": "mlp", "width": 16},
                "latent": {"dim": 4},
                "data": {"source": "npz", "path": str(path)},
                "train": {"steps": 6, "batch_size": 32, "seed": 1},
                "checkpoint_every": 6,
                "sample_every": 3,
            }
        ),
        None,
    )
    hooks = RecordingHooks()
    train(spec, hooks=hooks)
    (_, first), (step, last) = hooks.evaluations
    assert step == 6 and last["points_held_out"] == 200
    assert all(isinstance(e[f"points_{name}"], float) for e in (first, last) for name in FIGURES)
    again = RecordingHooks()
    repeated = evaluate_checkpoint(hooks.last_checkpoint, again, torch.device("cpu"), None)
    assert {k: v for k, v in repeated.items() if k.startswith("points_")} == {
        k: v for k, v in last.items() if k.startswith("points_")
    }


def test_a_point_file_too_small_to_hold_back_says_why(tmp_path: Path) -> None:
    folder = upload(tmp_path, three_clusters(300))
    metrics = RunEvaluation(upload_spec(), RecordingHooks(), torch.device("cpu"), folder)(
        4, OnClusters(3)
    )
    assert metrics["points_coverage"] is None
    assert metrics["points"].startswith("not scored: clusters.npz has 300 points, too few")
