"""Bring your own GAN through the real service: a code bundle pushed over HTTP, trained and
sampled by the API, scheduler and worker processes, on the session's service
(tests/e2e/conftest.py)."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import torch
from PIL import Image

from cli.packing import zip_folder
from tests.e2e.conftest import Service

ROOT = Path(__file__).resolve().parents[2]
RINGGAN = ROOT / "examples" / "byo" / "plugin" / "ringgan"
STEPS = 4


def push(service: Service, folder: Path) -> str:
    """Upload `folder` as a code bundle over HTTP, as `ganforge code push` does; its id."""
    packed = zip_folder(folder)
    response = service.http.post(
        service.url("/api/v1/code"),
        files={"file": (f"{folder.name}.zip", packed.data)},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    assert response.json()["id"] == hashlib.sha256(packed.data).hexdigest()
    return str(response.json()["id"])


def custom_spec(code: str, generator: str, discriminator: str, **args: Any) -> dict[str, Any]:
    """A few steps of a tiny custom model on the 8 Gaussians."""
    return {
        "model": {
            "family": "custom",
            "code": code,
            "generator": generator,
            "discriminator": discriminator,
            **args,
        },
        "latent": {"dim": 4},
        "data": {"source": "toy:ring8"},
        "train": {"steps": STEPS, "batch_size": 16, "seed": 1},
        "checkpoint_every": STEPS,
        "sample_every": STEPS,
    }


def ringgan_spec(code: str, generator: str = "ringgan.nets:ResidualGenerator") -> dict[str, Any]:
    return custom_spec(
        code,
        generator,
        "ringgan.nets:SpectralCritic",
        generator_args={"width": 16, "blocks": 1},
        discriminator_args={"width": 16, "depth": 2},
    )


@dataclass(frozen=True)
class Trained:
    code: str
    job: dict[str, Any]
    # The answer to deleting the bundle while the job that runs it was unfinished.
    delete_while_running: requests.Response


@pytest.fixture(scope="module")
def trained(service: Service) -> Trained:
    code = push(service, RINGGAN)
    job = service.submit("train", ringgan_spec(code), name="byo-ringgan")
    refused = service.http.delete(service.url(f"/api/v1/code/{code}"), timeout=30)
    return Trained(code, service.wait_final(job["id"]), refused)


def test_a_pushed_bundle_trains_and_samples_through_the_service(
    service: Service, trained: Trained
) -> None:
    job = trained.job
    assert job["state"] == "succeeded", job["error"]
    assert trained.delete_while_running.status_code == 409, trained.delete_while_running.text
    assert trained.delete_while_running.json()["jobs"] == [job["id"]]
    checkpoint_name = f"checkpoints/step-{STEPS:06d}.pt"
    assert {checkpoint_name, f"samples/step-{STEPS:06d}.png", "log.txt"} <= set(
        service.artifacts(job["id"])
    )
    checkpoint = torch.load(
        io.BytesIO(service.download(job["id"], checkpoint_name)), weights_only=True
    )
    assert checkpoint["step"] == STEPS and trained.code in checkpoint["spec_json"]
    assert f"step {STEPS}" in service.download(job["id"], "log.txt").decode()

    sampling = service.submit("sample", {"job_id": job["id"], "seeds": [0, 1, 2, 3]})
    sampled = service.wait_final(sampling["id"])
    assert sampled["state"] == "succeeded", sampled["error"]
    grid = Image.open(io.BytesIO(service.download(sampling["id"], "grid.png")))
    assert grid.format == "PNG" and grid.width > 0

    missing = service.http.post(
        service.url("/api/v1/jobs"),
        json={"kind": "train", "name": "x", "spec": ringgan_spec(trained.code, "ringgan.no:G")},
        timeout=30,
    )
    assert missing.status_code == 422, missing.text
    assert [e["path"] for e in missing.json()["errors"]] == ["spec.model.generator"]

    # Its jobs over, the bundle goes.
    assert service.http.delete(service.url(f"/api/v1/code/{trained.code}"), timeout=30).ok
    gone = service.http.get(service.url(f"/api/v1/code/{trained.code}"), timeout=30)
    assert gone.status_code == 404
