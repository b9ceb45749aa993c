"""The one place artifact keys are built.

Layout: `jobs/<job_id>/checkpoints/step-000500.pt`, `jobs/<job_id>/samples/step-000500.png`,
`jobs/<job_id>/metrics.jsonl`, `jobs/<job_id>/log.txt`; uploads at
`uploads/<dataset_id>/<filename>`; code bundles at `code/<sha256>/bundle.<zip|tar.gz>`. Job and
dataset ids are ours (hex), code ids are SHA-256 digests (hex), steps are integers, and an
upload's file name is sanitised and checked, so no raw user string ever reaches a key.
"""

from __future__ import annotations

import re

# The names are the keys' last parts; they live apart, for the job processes that name
# what they hand their agent without importing storage.
from shared.artifact_names import (  # noqa: F401  (re-exported: keys.checkpoint_name, ...)
    ARTIFACT_NAME,
    CURVES_NAME,
    GENERATOR_CARD_NAME,
    GENERATOR_SPEC_NAME,
    GENERATOR_TORCHSCRIPT_NAME,
    GENERATOR_WEIGHTS_NAME,
    GRID_NAME,
    INTERPOLATION_GIF_NAME,
    INVERSION_JSON_NAME,
    INVERSION_PNG_NAME,
    LATENTS_NAME,
    LOG_NAME,
    METRICS_NAME,
    NEIGHBOURHOOD_JSON_NAME,
    NEIGHBOURHOOD_PLOT_NAME,
    TIMELINE_NAME,
    KeyError_,
    checkpoint_name,
    evaluation_name,
    is_artifact_name,
    latents_name,
    samples_name,
    saved_generator_name,
    step_name,
    tensorboard_name,
)

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def job_prefix(job_id: str) -> str:
    if not _JOB_ID.fullmatch(job_id):
        raise KeyError_(f"not a ganforge job id: {job_id!r}")
    return f"jobs/{job_id}/"


def artifact_key(job_id: str, name: str) -> str:
    """The key of artifact `name` (shared/artifact_names.py) of a job."""
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


# Code bundles are stored by content: one object per SHA-256, whoever uploaded it.
_CODE_ID = re.compile(r"^[0-9a-f]{64}$")
CODE_FORMATS = ("zip", "tar.gz")


def code_prefix(sha256: str) -> str:
    if not _CODE_ID.fullmatch(sha256):
        raise KeyError_(f"not a ganforge code bundle id: {sha256!r}")
    return f"code/{sha256}/"


def code_key(sha256: str, fmt: str) -> str:
    """The key of a code bundle's archive: `code/<sha256>/bundle.<zip|tar.gz>`."""
    if fmt not in CODE_FORMATS:
        raise KeyError_(f"not a code bundle format: {fmt!r}")
    return f"{code_prefix(sha256)}bundle.{fmt}"
