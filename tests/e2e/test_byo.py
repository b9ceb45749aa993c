"""Bring your own GAN through the real service: a code bundle pushed over HTTP, trained and
sampled by the API, scheduler and worker processes; and a hostile bundle that, from inside
its sandboxed rank, tries to reach the service's secrets and files and another user's work.

Both run on the session's service (tests/e2e/conftest.py): the hostile job's victim is the
trained job of the first, another user's."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import torch
from PIL import Image

from cli.packing import zip_folder
from tests.e2e.conftest import Service
from tests.helpers import user_token

ROOT = Path(__file__).resolve().parents[2]
RINGGAN = ROOT / "examples" / "byo" / "plugin" / "ringgan"
HOSTILE = ROOT / "tests" / "data" / "bundles" / "hostile" / "hostile"
STEPS = 4
# What the agent says when it cuts off the hostile rank (its header claims 2 GiB).
VIOLATION = (
    "the job's processes were cut off by the node agent: "
    "FrameError: a header frame of 2,147,483,648 bytes is over 1,048,576"
)


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


def worker_environ(service: Service) -> str:
    """The environment the Celery worker was started with. Not read back from
    /proc/<pid>/environ: Celery sets its process title with setproctitle (installed for the
    ranks' titles), which writes the title over the area that file shows."""
    return "\n".join(f"{k}={v}" for k, v in service.settings.to_env().items())


def test_a_hostile_bundle_in_its_rank_reaches_nothing_of_the_service_or_of_others(
    service: Service, trained: Trained
) -> None:
    settings, victim = service.settings, trained.job["id"]
    held = worker_environ(service).splitlines()
    for name, value in (
        ("GANFORGE_DATABASE_URL", settings.database_url),
        ("GANFORGE_BROKER_URL", settings.broker_url),
        ("GANFORGE_STORAGE_URL", settings.storage_url),
    ):
        assert f"{name}={value}" in held, f"the worker must hold {name} for the test to mean much"
    secret = settings.home / "secret.txt"
    secret.write_text(settings.database_url)
    tmp_probe = Path(f"/tmp/ganforge-byo-planted-{uuid.uuid4().hex[:12]}")
    victim_before = service.artifacts(victim)

    mallory = requests.Session()
    mallory.headers["Authorization"] = f"Bearer {user_token(settings, 'byo-mallory')}"
    attacker = dataclasses.replace(service, http=mallory)
    code = push(attacker, HOSTILE)
    args = {"home": str(settings.home), "victim": victim, "tmp_probe": str(tmp_probe)}
    spec = custom_spec(code, "hostile.nets:Generator", "hostile.nets:Critic", generator_args=args)
    try:
        job = attacker.wait_final(attacker.submit("train", spec, name="hostile")["id"])
    finally:
        secret.unlink()
        # Looked for, and removed, before anything else is asserted: a failing run leaves none.
        planted = [path for path in (settings.home / "planted.txt", tmp_probe) if path.exists()]
        for path in planted:
            path.unlink()
    assert planted == []

    # Its last try, the malformed message, got it cut off: the error is the agent's word, and
    # what happened to the tries before came as a warning (tests/data/bundles/hostile).
    assert job["state"] == "failed"
    assert job["error"] == VIOLATION
    tried = json.loads(job["warnings"][0]["message"])
    ancestors = tried.pop("ancestors")
    assert ancestors[str(service.processes.processes["worker"].pid)] == "PermissionError"
    assert "SECRET" not in ancestors.values(), ancestors
    assert tried.pop("readable_environs") >= 1  # its own, at least: the scan ran
    assert tried == {
        "env": [],
        "leaks": [],
        "read_home_secret": "PermissionError",
        "read_worker_log": "PermissionError",
        "list_home": "PermissionError",
        "write_home": "PermissionError",
        "write_tmp": "PermissionError",
        "write_own_folder": "ok",
        "their_checkpoint": "JobInputError",
        "their_log": "JobInputError",
    }
    assert service.artifacts(victim) == victim_before
    assert service.job(victim)["state"] == "succeeded"
