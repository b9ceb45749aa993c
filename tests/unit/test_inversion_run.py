"""An `invert` sampling job run by the worker's `run_sampling` (what a rank, and the warm
sampler, call), against the embedded defaults: images a generator made from known latents,
uploaded as a dataset, come back as their latents, with the pictures, the distances and a
training-style progress report; an earlier job's grid is read cell by cell."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from flask.testing import FlaskClient
from PIL import Image
from torch import nn

from shared.config import Settings
from shared.db import session_scope
from shared.models import Job
from shared.specs import SampleSpec, TrainSpec
from shared.storage import Storage, keys, open_storage
from tests.attempts import attempt_of
from tests.helpers import auth
from tests.unit.job_factories import S, move
from tests.unit.test_datasets_api import uploaded
from tests.unit.test_inversion_specs import MNIST_GAN
from worker.artifacts import put_artifact
from worker.gan.checkpoint import CHECKPOINT_FORMAT_VERSION, checkpoint_to_bytes
from worker.gan.grids import image_grid_png
from worker.gan.models import build_generator
from worker.gan.priors import latents_for_seeds
from worker.rank_inputs import JobInputError
from worker.reporter import JobReporter
from worker.sampling import run_sampling

SEEDS = [5, 6, 7]
# Images are stored as 8-bit PNG/npz, so the targets are G(z) rounded to 1/127.5: the best
# reconstruction is off by that rounding (MSE about 5e-6). Measured after 200 steps: 6e-6.
MSE_BOUND = 1e-4


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def store(settings: Settings) -> Storage:
    return open_storage(settings)


def _generator(spec: TrainSpec) -> nn.Module:
    """A dcgan whose images vary with z at once (He weights; see test_gan_inversion.py)."""
    torch.manual_seed(0)
    generator = build_generator(spec)
    for module in generator.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return generator.eval()


def _trained_job(client: FlaskClient, settings: Settings, store: Storage, token: str) -> Any:
    """A train job with one checkpoint (step 10) of a varied generator, and that generator."""
    response = client.post(
        "/api/v1/jobs", json={"kind": "train", "name": "g", "spec": MNIST_GAN}, headers=auth(token)
    )
    job_id = response.get_json()["id"]
    spec = TrainSpec.model_validate(MNIST_GAN)
    generator = _generator(spec)
    checkpoint = {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "step": 10,
        "spec_json": spec.model_dump_json(),
        "latent": {"dim": spec.latent.dim, "prior": spec.latent.prior},
        "generator": generator.state_dict(),
        "generator_ema": None,
    }
    data = checkpoint_to_bytes(checkpoint)
    put_artifact(
        settings.database_url, store, job_id, keys.checkpoint_name(10), "checkpoint", data, 10
    )
    return job_id, generator, spec


def _uint8(images: torch.Tensor) -> np.ndarray:
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def _submit_and_run(
    client: FlaskClient,
    settings: Settings,
    store: Storage,
    token: str,
    spec: dict[str, Any],
    tmp_path: Path,
) -> tuple[str, dict[str, bytes], JobReporter]:
    response = client.post(
        "/api/v1/jobs", json={"kind": "sample", "name": "inv", "spec": spec}, headers=auth(token)
    )
    assert response.status_code == 201, response.get_json()
    job_id = response.get_json()["id"]
    move(settings, job_id, S.QUEUED, S.SCHEDULED, S.RUNNING)  # artifacts need a live attempt
    with attempt_of(settings, store, job_id, 1, tmp_path) as attempt:
        reporter = attempt.reporter()
        status = run_sampling(
            attempt.link, SampleSpec.model_validate(spec), torch.device("cpu"), reporter
        )
        assert status == "succeeded"
        reporter.flush()
    artifacts = {
        o.key.removeprefix(f"jobs/{job_id}/"): store.get(o.key)
        for o in store.list(f"jobs/{job_id}/")
    }
    return job_id, artifacts, reporter


def test_an_invert_job_recovers_the_latents_of_images_its_generator_made(
    client: FlaskClient, settings: Settings, store: Storage, alice: str, tmp_path: Path
) -> None:
    source, generator, spec = _trained_job(client, settings, store, alice)
    truth = latents_for_seeds(spec.latent, SEEDS)
    with torch.no_grad():
        made = generator(truth)
    npz = tmp_path / "made.npz"
    np.savez(npz, data=_uint8(made)[:, 0])
    dataset = uploaded(client, alice, npz)["id"]
    invert = {
        "images": {"dataset_id": dataset, "indices": [2, 0]},
        "steps": 200,
        "prior_weight": 0.0,
    }
    job_id, artifacts, _ = _submit_and_run(
        client, settings, store, alice, {"job_id": source, "invert": invert}, tmp_path
    )
    report = json.loads(artifacts[keys.INVERSION_JSON_NAME])
    assert [image["index"] for image in report["images"]] == [2, 0]
    assert report["mean_mse"] < MSE_BOUND < report["mean_initial_mse"]
    assert all(i["mse"] < i["initial_mse"] for i in report["images"])
    latents = np.load(io.BytesIO(artifacts[keys.LATENTS_NAME]))
    assert np.abs(latents - truth[[2, 0]].numpy()).max() < 0.05
    pairs = Image.open(io.BytesIO(artifacts[keys.INVERSION_PNG_NAME]))
    assert pairs.size == (2 * 30 + 2, 2 * 30 + 2)  # two rows of (original, reconstruction)
    assert Image.open(io.BytesIO(artifacts[keys.GRID_NAME])).size == (2 * 30 + 2, 30 + 2)
    # Progress as training reports it: on the job row, in metrics.jsonl and in the log.
    with session_scope(settings.database_url) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.progress is not None
        assert job.progress["step"] == 200 and job.progress["total_steps"] == 200
    lines = [json.loads(line) for line in artifacts[keys.METRICS_NAME].decode().splitlines()]
    assert [line["step"] for line in lines] == list(range(10, 201, 10))
    assert lines[-1]["Loss/invert/loss"] < lines[0]["Loss/invert/loss"]
    log = artifacts[keys.LOG_NAME].decode()
    assert "inverting 2 images" in log and "step 200/200: loss" in log


def test_the_cells_of_an_earlier_grid_are_inverted_and_a_wrong_size_fails_naming_the_field(
    client: FlaskClient, settings: Settings, store: Storage, alice: str, tmp_path: Path
) -> None:
    source, generator, spec = _trained_job(client, settings, store, alice)
    with torch.no_grad():
        made = generator(latents_for_seeds(spec.latent, SEEDS))
    put_artifact(
        settings.database_url, store, source, "made.png", "samples", image_grid_png(made, 2)
    )
    invert = {"images": {"job_id": source, "name": "made.png"}, "steps": 30}
    _, artifacts, _ = _submit_and_run(
        client, settings, store, alice, {"job_id": source, "invert": invert}, tmp_path
    )
    report = json.loads(artifacts[keys.INVERSION_JSON_NAME])
    # A 2x2 grid of three images: the empty fourth cell is not an image.
    assert [image["index"] for image in report["images"]] == [0, 1, 2]
    assert report["mean_mse"] < report["mean_initial_mse"]
    # Rewritten after submission as a picture that is no grid: the worker says which field.
    put_artifact(
        settings.database_url,
        store,
        source,
        "made.png",
        "samples",
        image_grid_png(made[:, :, :20, :20]),
    )
    with (
        attempt_of(settings, store, source, 1, tmp_path / "again") as attempt,
        pytest.raises(JobInputError, match=r"^spec\.invert\.images: made\.png is 46x46 px"),
    ):
        spec_ = SampleSpec.model_validate({"job_id": source, "invert": invert})
        run_sampling(attempt.link, spec_, torch.device("cpu"), attempt.reporter())
