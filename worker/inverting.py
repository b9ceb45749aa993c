"""An `invert` sampling job's run, inside `run_sampling`: read the images, optimise their
latents (worker/gan/inversion.py) reporting progress as training does, and make the outputs:
`latents.npy` (the latents drawn, truncation applied, so a `latents` job redraws the
reconstructions), `grid.png` (the reconstructions), `inversion.png` (each original beside its
reconstruction, a pair a row) and `inversion.json` (the distances per image and their mean).

Nothing is kept between calls: a long-lived sampler may call it again and again.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from shared import artifact_names as keys
from shared.specs import SampleSpec, TrainSpec
from shared.specs.inversion import InversionSpec
from worker.channel.link import AgentLink
from worker.gan.evaluation import digit_scorer
from worker.gan.grids import image_grid_png
from worker.gan.hooks import ProgressReport
from worker.gan.inversion import (
    InversionProgress,
    InversionResult,
    InversionSettings,
    invert,
    render,
)
from worker.gan.sample import check_size, load_generator
from worker.gan.style_space import is_style
from worker.inversion_images import load_inversion_images
from worker.rank_inputs import JobInputError, job_data
from worker.reporter import JobReporter

# A log line with the current loss about ten times a run, as training logs its reports.
LOG_LINES = 10
# G's [-1, 1] to 8-bit levels, as PNGs and neighbourhood.json measure images.
LEVELS_PER_UNIT = 127.5
UNITS = {
    "mse": "mean squared error per pixel, in G's [-1, 1] range",
    "rms_levels": "RMS over pixels in 8-bit levels (0-255), as neighbourhood.json",
    "loss": "the optimised loss: mse for pixel, mean squared error in the digit "
    "classifier's 64 features for feature",
}

Output = tuple[str, str, bytes]


def run_inversion(
    link: AgentLink,
    sampling: SampleSpec,
    checkpoint: dict[str, Any],
    device: torch.device,
    reporter: JobReporter,
) -> list[Output] | None:
    """The artifacts of the spec's inversion, or None when the job was cancelled midway."""
    spec = sampling.invert
    assert spec is not None
    generator, trained = load_generator(checkpoint, device)
    shape = trained.data.sample_shape
    if shape is None or len(shape) != 3:
        raise JobInputError(
            f"spec.job_id: job {sampling.job_id} makes points; invert needs an image generator"
        )
    pixels, chosen = load_inversion_images(link, spec.images, shape)
    check_size(trained, sampling, len(chosen))
    targets = torch.from_numpy(pixels).to(device, torch.float32) / LEVELS_PER_UNIT - 1
    if spec.space == "w" and not is_style(generator):
        raise JobInputError(
            f"spec.invert.space: w is stylegan2's latent space; job {sampling.job_id} trained "
            f"{trained.model.family} (use space z)"
        )
    features = _features(link, sampling.job_id, spec, trained, reporter, device)
    reporter.log(
        f"inverting {len(chosen)} images with step {checkpoint['step']} of {sampling.job_id}: "
        f"{spec.steps} steps, lr {spec.lr}, {spec.loss} loss, prior weight {spec.prior_weight}, "
        f"{spec.restarts} restart(s)"
    )
    options = InversionSettings(
        steps=spec.steps,
        lr=spec.lr,
        prior_weight=spec.prior_weight,
        restarts=spec.restarts,
        seed=spec.seed,
        truncation=sampling.truncation,
        space=spec.space or "z",
    )
    progress = _Progress(reporter, len(chosen) * spec.restarts, spec.steps)
    result = invert(generator, trained.latent, targets, options, features, progress)
    if result.stopped:
        reporter.log(f"cancelled at step {result.steps_done} of {spec.steps}")
        return None
    return _outputs(generator, trained, sampling, targets, chosen, result, device, options)


def _features(
    link: AgentLink,
    source_job: str,
    spec: InversionSpec,
    trained: TrainSpec,
    reporter: JobReporter,
    device: torch.device,
) -> nn.Module | None:
    """The digit classifier's trunk for `feature` loss (the network MNIST evaluations and
    path length measure in, trained on the source job's labelled digits, cached by the
    store); None for `pixel`."""
    if spec.loss != "feature":
        return None
    with job_data(trained.data, link, reporter.ticket.roots) as data_path:
        scorer = digit_scorer(trained, data_path, reporter)
    if scorer is None:
        raise JobInputError(
            f"spec.invert.loss: feature loss measures in the digit classifier of the job's "
            f"MNIST data (grey, with its labels file); job {source_job} has none"
        )
    return scorer.feature_network.to(device).eval()


class _Progress:
    """The inversion's progress as a training job's: ProgressReports (losses under
    `Loss/invert/...`, images per second, seconds per step) and a log line now and then."""

    def __init__(self, reporter: JobReporter, latents: int, steps: int) -> None:
        self.reporter, self.latents, self.steps = reporter, latents, steps
        self.log_every = max(1, steps // LOG_LINES)
        self.next_log = self.log_every
        self.last_step, self.last_time = 0, time.monotonic()

    def __call__(self, progress: InversionProgress) -> bool:
        now = time.monotonic()
        done = progress.step - self.last_step
        seconds = max(now - self.last_time, 1e-9) / max(done, 1)
        self.last_step, self.last_time = progress.step, now
        metrics = {
            "Loss/invert/loss": progress.loss,
            "Loss/invert/objective": progress.objective,
            "Timing/sec_per_step": seconds,
        }
        report = ProgressReport(progress.step, self.steps, self.latents / seconds, metrics)
        self.reporter.report_progress(report)
        if progress.step >= self.next_log or progress.step == self.steps:
            self.next_log += self.log_every
            self.reporter.log(
                f"step {progress.step}/{self.steps}: loss {progress.loss:.4g}, objective "
                f"{progress.objective:.4g}"
            )
        return self.reporter.should_stop()


@torch.no_grad()
def _outputs(
    generator: nn.Module,
    trained: TrainSpec,
    sampling: SampleSpec,
    targets: Tensor,
    chosen: list[int],
    result: InversionResult,
    device: torch.device,
    settings: InversionSettings,
) -> list[Output]:
    reconstructions = render(generator, result.latents.to(device), settings).clamp(-1, 1)
    initial = render(generator, result.initial_latents.to(device), settings).clamp(-1, 1)
    pairs = torch.stack([targets, reconstructions], dim=1).flatten(end_dim=1)
    latents = io.BytesIO()
    np.save(latents, result.latents.numpy())
    report = inversion_report(sampling, trained, targets, reconstructions, initial, chosen, result)
    return [
        (keys.GRID_NAME, "samples", image_grid_png(reconstructions.cpu())),
        (keys.LATENTS_NAME, "latents", latents.getvalue()),
        (keys.INVERSION_PNG_NAME, "inversion", image_grid_png(pairs.cpu(), columns=2)),
        (keys.INVERSION_JSON_NAME, "inversion", json.dumps(report, indent=2).encode()),
    ]


def inversion_report(
    sampling: SampleSpec,
    trained: TrainSpec,
    targets: Tensor,
    reconstructions: Tensor,
    initial: Tensor,
    chosen: list[int],
    result: InversionResult,
) -> dict[str, Any]:
    """`inversion.json`: per image its distances now and at step 0 (see UNITS), and means."""
    spec = sampling.invert
    assert spec is not None
    mse = _mse(reconstructions, targets)
    initial_mse = _mse(initial, targets)
    rms_levels = mse.sqrt() * LEVELS_PER_UNIT
    norms = result.latents.double().norm(dim=1)
    images = [
        {
            "index": index,
            "mse": float(mse[i]),
            "rms_levels": float(rms_levels[i]),
            "initial_mse": float(initial_mse[i]),
            "loss": float(result.loss[i]),
            "initial_loss": float(result.initial_loss[i]),
            "restart": int(result.restart[i]),
            "latent_norm": float(norms[i]),
        }
        for i, index in enumerate(chosen)
    ]
    return {
        "source": spec.images.model_dump(mode="json", exclude_none=True),
        "loss": spec.loss,
        "steps": result.steps_done,
        "lr": spec.lr,
        "prior": trained.latent.prior,
        "prior_weight": spec.prior_weight if trained.latent.prior == "gaussian" else None,
        "restarts": spec.restarts,
        "seed": spec.seed,
        "truncation": sampling.truncation,
        "units": UNITS,
        "mean_mse": float(mse.mean()),
        "mean_rms_levels": float(rms_levels.mean()),
        "mean_initial_mse": float(initial_mse.mean()),
        "mean_loss": float(result.loss.mean()),
        "images": images,
    }


def _mse(images: Tensor, targets: Tensor) -> Tensor:
    difference = images.double() - targets.double()
    return difference.pow(2).flatten(start_dim=1).mean(dim=1).cpu()
