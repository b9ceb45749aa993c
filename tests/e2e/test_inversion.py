"""GAN inversion through the real service: a small dcgan is trained on uploaded MNIST digits,
a seeds job draws a grid, and `invert` jobs find the latents of that grid's cells and of some
of the uploaded digits, with every artifact downloaded. (The upload has no labels, so no
digit classifier is trained: that alone takes ~30 s here; feature loss is covered by the
unit tests.)"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from shared.datafiles.formats import read_idx3
from tests.e2e.conftest import Service
from tests.helpers import MNIST_DIR


# 60 steps at lr 2e-3 give images that differ by a per-pixel MSE of about 0.03 between
# latents (6 steps: 1e-3, too close to the 8-bit rounding of a PNG, about 5e-6, to test on).
def gan_on(dataset_id: str) -> dict[str, Any]:
    return {
        "model": {"family": "dcgan", "width": 8},
        "latent": {"dim": 16},
        "data": {"source": "dataset", "dataset_id": dataset_id},
        "train": {"steps": 60, "batch_size": 16, "lr": 2e-3, "seed": 3},
        "checkpoint_every": 60,
        "sample_every": 60,
    }


# Digits uploaded: enough for 60 batches of 16 to see varied data.
DIGITS = 512
# Images the generator drew, stored as an 8-bit PNG, inverted with pixel loss and no prior
# term for 150 steps: the reconstructions must come within this per-pixel MSE (G's [-1, 1]).
MSE_BOUND = 1e-3
INVERSION_ARTIFACTS = {"grid.png", "latents.npy", "inversion.png", "inversion.json"}


def _upload_digits(service: Service, tmp_path: Path, count: int) -> str:
    digits = read_idx3(next(MNIST_DIR.glob("*images-idx3*")))[:count]
    path = tmp_path / "digits.npz"
    np.savez(path, data=digits)
    with path.open("rb") as stream:
        response = service.http.post(
            service.url("/api/v1/datasets"),
            data={"name": "digits"},
            files={"file": ("digits.npz", stream)},
            timeout=60,
        )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _succeeded(service: Service, job_id: str) -> dict[str, Any]:
    job = service.wait_final(job_id)
    assert job["state"] == "succeeded", job["error"]
    assert set(service.artifacts(job_id)) >= INVERSION_ARTIFACTS
    return job


def test_invert_jobs_find_the_latents_of_a_grid_and_of_uploaded_digits(
    service: Service, tmp_path: Path
) -> None:
    dataset = _upload_digits(service, tmp_path, DIGITS)
    trained = service.wait_final(service.submit("train", gan_on(dataset), name="inv-gan")["id"])
    assert trained["state"] == "succeeded", trained["error"]
    source = trained["id"]
    seeds = service.wait_final(
        service.submit("sample", {"job_id": source, "seeds": [1, 2, 3]})["id"]
    )
    assert seeds["state"] == "succeeded", seeds["error"]
    grid = {
        "images": {"job_id": seeds["id"], "name": "grid.png"},
        "steps": 150,
        "prior_weight": 0.0,
    }
    digits = {"images": {"dataset_id": dataset, "indices": [3, 1]}, "steps": 40}
    jobs = {
        name: service.submit("sample", {"job_id": source, "invert": spec}, name=name)["id"]
        for name, spec in (("grid", grid), ("digits", digits))
    }

    job = _succeeded(service, jobs["grid"])
    assert job["progress"]["step"] == 150 and job["progress"]["total_steps"] == 150
    report = json.loads(service.download(jobs["grid"], "inversion.json"))
    assert [image["index"] for image in report["images"]] == [0, 1, 2]
    assert report["mean_mse"] < MSE_BOUND and report["mean_mse"] < report["mean_initial_mse"]
    pairs = Image.open(io.BytesIO(service.download(jobs["grid"], "inversion.png")))
    assert pairs.size == (2 * 30 + 2, 3 * 30 + 2)  # a row per image: original, reconstruction
    latents = np.load(io.BytesIO(service.download(jobs["grid"], "latents.npy")))
    assert latents.shape == (3, 16) and latents.dtype == np.float32
    log = service.download(jobs["grid"], "log.txt").decode()
    assert "inverting 3 images" in log and "step 150/150: loss" in log

    _succeeded(service, jobs["digits"])
    report = json.loads(service.download(jobs["digits"], "inversion.json"))
    assert [image["index"] for image in report["images"]] == [3, 1]
    assert report["mean_mse"] < report["mean_initial_mse"]
