"""The names of a job's artifacts: the last part of their keys (shared/storage/keys.py builds
the keys). Apart from storage so that a job's sandboxed processes, which name what they hand
their agent but open no store, need not import it."""

from __future__ import annotations

import re

# Zero-padded to 6 digits so that keys sort by step up to a million steps; longer runs
# still produce valid, unique keys (just wider).
_STEP_DIGITS = 6


class KeyError_(ValueError):
    """A key or name was asked for with an id, step or name that is not ours."""


def step_name(step: int) -> str:
    if step < 0:
        raise KeyError_(f"step must be non-negative, got {step}")
    return f"step-{step:0{_STEP_DIGITS}d}"


def checkpoint_name(step: int) -> str:
    return f"checkpoints/{step_name(step)}.pt"


def samples_name(step: int) -> str:
    return f"samples/{step_name(step)}.png"


def evaluation_name(step: int) -> str:
    return f"evaluations/{step_name(step)}.png"


def latents_name(step: int) -> str:
    return f"samples/{step_name(step)}-latents.npy"


def tensorboard_name(attempt: int) -> str:
    """One TensorBoard event file per attempt; `tensorboard --logdir` reads them as one run."""
    return f"tensorboard/events.out.tfevents.attempt-{attempt}"


METRICS_NAME = "metrics.jsonl"
TIMELINE_NAME = "timeline.gif"
CURVES_NAME = "curves.png"
LOG_NAME = "log.txt"
# A sampling job's outputs (shared.specs.SampleSpec): every mode's grid and latents, an
# interpolation's animation, a neighbourhood's distances and their plot, an inversion's
# pairs and distances, and an export.
GRID_NAME = "grid.png"
LATENTS_NAME = "latents.npy"
INTERPOLATION_GIF_NAME = "interpolation.gif"
NEIGHBOURHOOD_JSON_NAME = "neighbourhood.json"
NEIGHBOURHOOD_PLOT_NAME = "neighbourhood.png"
# An inversion's originals beside their reconstructions (pairs in rows) and its distances.
INVERSION_PNG_NAME = "inversion.png"
INVERSION_JSON_NAME = "inversion.json"
GENERATOR_WEIGHTS_NAME = "generator.safetensors"
GENERATOR_CARD_NAME = "generator.json"
GENERATOR_TORCHSCRIPT_NAME = "generator.torchscript.pt"
# A script job's generator, saved for sampling (worker/runtime.py `save_generator`): its
# weights at a step, and the training spec that describes it (the same for every step).
GENERATOR_SPEC_NAME = "generator/spec.json"


def saved_generator_name(step: int) -> str:
    return f"generator/{step_name(step)}.pt"


# What every name above looks like: at most one folder, then a file name. The API's OpenAPI
# document publishes this pattern for the download route's `name`.
ARTIFACT_NAME = re.compile(r"^(?:[a-z]+/)?[a-z0-9][a-z0-9._-]*$")


def is_artifact_name(name: str) -> bool:
    """Whether `name` has the shape of the names built above (what a URL may ask for)."""
    return bool(ARTIFACT_NAME.fullmatch(name)) and ".." not in name
