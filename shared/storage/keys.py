"""The one place artifact keys are built.

Layout: `jobs/<job_id>/checkpoints/step-000500.pt`, `jobs/<job_id>/samples/step-000500.png`,
`jobs/<job_id>/metrics.jsonl`, `jobs/<job_id>/log.txt`; uploads at
`uploads/<dataset_id>/<filename>`. Job and dataset ids are ours (hex), steps are integers, and
an upload's file name is sanitised and checked, so no raw user string ever reaches a key.
"""

from __future__ import annotations

import re

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
# Zero-padded to 6 digits so that keys sort by step up to a million steps; longer runs
# still produce valid, unique keys (just wider).
_STEP_DIGITS = 6


class KeyError_(ValueError):
    """A key was asked for with an id or name that is not ours."""


def job_prefix(job_id: str) -> str:
    if not _JOB_ID.fullmatch(job_id):
        raise KeyError_(f"not a ganforge job id: {job_id!r}")
    return f"jobs/{job_id}/"


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

# What every name above looks like: at most one folder, then a file name. The API's OpenAPI
# document publishes this pattern for the download route's `name`.
ARTIFACT_NAME = re.compile(r"^(?:[a-z]+/)?[a-z0-9][a-z0-9._-]*$")


def is_artifact_name(name: str) -> bool:
    """Whether `name` has the shape of the names built above (what a URL may ask for)."""
    return bool(ARTIFACT_NAME.fullmatch(name)) and ".." not in name


def artifact_key(job_id: str, name: str) -> str:
    """The key of artifact `name` (one of the names built above) of a job."""
    if not is_artifact_name(name):
        raise KeyError_(f"not a ganforge artifact name: {name!r}")
    return job_prefix(job_id) + name


_CACHE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


def cache_key(name: str) -> str:
    """`cache/<name>`: what jobs share (trained evaluation classifiers), made by workers."""
    if not _CACHE_NAME.fullmatch(name):
        raise KeyError_(f"not a ganforge cache name: {name!r}")
    return f"cache/{name}"


# Uploaded datasets live apart from datasets/ (which a spec's `key` may name directly), so the
# only way a job reaches an upload is by its dataset_id, after the ownership check.
_DATASET_ID = re.compile(r"^[0-9a-f]{32}$")
# A stored upload keeps a sanitised form of its name (the extension tells its format).
DATASET_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def dataset_prefix(dataset_id: str) -> str:
    if not _DATASET_ID.fullmatch(dataset_id):
        raise KeyError_(f"not a ganforge dataset id: {dataset_id!r}")
    return f"uploads/{dataset_id}/"


def dataset_key(dataset_id: str, filename: str) -> str:
    """The key of an uploaded dataset's file: `uploads/<dataset_id>/<filename>`."""
    if not DATASET_FILENAME.fullmatch(filename) or ".." in filename:
        raise KeyError_(f"not a valid dataset file name: {filename!r}")
    return dataset_prefix(dataset_id) + filename
