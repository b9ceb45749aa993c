"""A sampling job's run: read the checkpoint and any latents it names, draw what its mode
asks for (or find the latents of the images it names: worker/inverting.py), export the
generator when asked, and store every output under its stable name (shared.storage.keys)."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import torch

from shared import artifact_names as keys
from shared.specs import SampleSpec
from worker.channel.link import AgentLink
from worker.gan.checkpoint import checkpoint_spec
from worker.gan.export import export_generator
from worker.gan.latents import read_latents_npy
from worker.gan.sample import SampleResult, sample_for_spec
from worker.inverting import run_inversion
from worker.rank_inputs import JobInputError, load_checkpoint_of, load_latents_artifact
from worker.reporter import JobReporter

# (artifact name, artifact kind, bytes)
Output = tuple[str, str, bytes]


def run_sampling(
    link: AgentLink,
    spec: SampleSpec,
    device: torch.device,
    reporter: JobReporter,
    lap: Callable[[str], None] = lambda _stage: None,
) -> str:
    """Draw what `spec` asks for and store its artifacts; `lap(stage)` is told as each stage
    ends (the warm sampler's per-stage timer)."""
    checkpoint = load_checkpoint_of(link, spec.job_id, spec.step, device)
    lap("checkpoint")
    if checkpoint is None:
        at = "any step" if spec.step is None else f"step {spec.step}"
        raise JobInputError(f"spec.job_id: job {spec.job_id} has no checkpoint at {at}")
    outputs: list[Output] = []
    if spec.invert is not None:
        inverted = run_inversion(link, spec, checkpoint, device, reporter)
        if inverted is None:
            return "cancelled"
        outputs += inverted
    elif spec.mode != "export":
        loaded = None
        if spec.latents_artifact is not None:
            data = load_latents_artifact(link, spec.latents_artifact)
            dim = checkpoint_spec(checkpoint).latent.dim
            loaded = read_latents_npy(data, dim, spec.latents_artifact.name)
        count = spec.image_count if loaded is None else len(loaded)
        reporter.log(
            f"sampling {_mode_words(spec)}{count} images from step {checkpoint['step']} "
            f"of {spec.job_id}"
        )
        outputs += sample_outputs(sample_for_spec(checkpoint, spec, device, loaded))
    if spec.export:
        reporter.log(f"exporting the generator of step {checkpoint['step']} of {spec.job_id}")
        exported = export_generator(checkpoint, spec.job_id)
        outputs.append((keys.GENERATOR_WEIGHTS_NAME, "export", exported.weights))
        if exported.torchscript is not None:  # a custom generator may not script or trace
            outputs.append((keys.GENERATOR_TORCHSCRIPT_NAME, "export", exported.torchscript))
        outputs.append((keys.GENERATOR_CARD_NAME, "export", exported.card))
    lap("drawn")
    # The outputs and the log as it stands, in one batch: all a short job has left to write.
    reporter.store_with_logs([(name, kind, data, None) for name, kind, data in outputs])
    lap("stored")
    return "succeeded"


def sample_outputs(result: SampleResult) -> list[Output]:
    """The artifacts of a drawing: the grid and its latents, and what its mode adds."""
    latents = io.BytesIO()
    np.save(latents, result.latents)
    outputs = [
        (keys.GRID_NAME, "samples", result.png),
        (keys.LATENTS_NAME, "latents", latents.getvalue()),
    ]
    if result.gif is not None:
        outputs.append((keys.INTERPOLATION_GIF_NAME, "interpolation", result.gif))
    if result.neighbourhood is not None:
        outputs += [
            (keys.NEIGHBOURHOOD_JSON_NAME, "neighbourhood", result.neighbourhood.json),
            (keys.NEIGHBOURHOOD_PLOT_NAME, "neighbourhood", result.neighbourhood.plot),
        ]
    return outputs


def _mode_words(spec: SampleSpec) -> str:
    return "" if spec.mode in ("seeds", "latents") else f"{spec.mode}: "
