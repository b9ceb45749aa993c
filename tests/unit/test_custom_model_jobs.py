"""A researcher's own GAN through the service's own path: its code pushed as a bundle, a
`custom` training job checked at submission, run by the worker's supervisor (agent, sandbox,
launcher, two ranks), then sampled from its checkpoint the same way."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from cli.packing import zip_folder
from shared.config import Settings
from shared.storage import keys, open_storage
from tests.helpers import auth
from tests.unit.job_factories import S, move
from worker.supervisor import supervise

pytestmark = pytest.mark.processes

PLUGIN = Path(__file__).resolve().parents[2] / "examples" / "byo" / "plugin" / "ringgan"


def _custom_spec(code: str, generator: str = "ringgan.nets:ResidualGenerator") -> dict[str, Any]:
    return {
        "model": {
            "family": "custom",
            "code": code,
            "generator": generator,
            "discriminator": "ringgan.nets:SpectralCritic",
            "generator_args": {"width": 16, "blocks": 1},
            "discriminator_args": {"width": 16, "depth": 2},
        },
        "latent": {"dim": 4},
        "data": {"source": "toy:ring8"},
        "train": {"steps": 4, "batch_size": 16, "seed": 1},
        "checkpoint_every": 4,
        "sample_every": 4,
        "resources": {"devices": 2},  # two ranks: DDP over gloo, each importing the bundle
    }


def _submit(client: FlaskClient, token: str, kind: str, spec: dict[str, Any]) -> Any:
    return client.post(
        "/api/v1/jobs", json={"kind": kind, "name": kind, "spec": spec}, headers=auth(token)
    )


def test_a_custom_model_trains_and_samples_through_the_worker(
    client: FlaskClient, settings: Settings, alice: str, bob: str
) -> None:
    packed = zip_folder(PLUGIN)
    uploaded = client.post(
        "/api/v1/code",
        data={"file": (io.BytesIO(packed.data), "ringgan.zip")},
        headers=auth(alice),
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 201, uploaded.get_json()
    code = uploaded.get_json()["id"]
    missing = _submit(client, alice, "train", _custom_spec(code, "ringgan.nowhere:Generator"))
    assert missing.status_code == 422
    assert "spec.model.generator" in str(missing.get_json())
    assert _submit(client, bob, "train", _custom_spec(code)).status_code == 422  # not bob's
    submitted = _submit(client, alice, "train", _custom_spec(code))
    assert submitted.status_code == 201, submitted.get_json()
    train_id = submitted.get_json()["id"]
    store = open_storage(settings)
    move(settings, train_id, S.QUEUED, S.SCHEDULED, S.RUNNING)
    trained = supervise(settings, store, train_id, 1)
    assert trained.status == "succeeded", trained.error
    assert store.list(keys.artifact_key(train_id, keys.checkpoint_name(4)))
    sampling = _submit(client, alice, "sample", {"job_id": train_id, "seeds": [0, 1, 2, 3]})
    assert sampling.status_code == 201, sampling.get_json()
    sample_id = sampling.get_json()["id"]
    move(settings, sample_id, S.QUEUED, S.SCHEDULED, S.RUNNING)
    sampled = supervise(settings, store, sample_id, 1)
    assert sampled.status == "succeeded", sampled.error
    assert store.get(keys.artifact_key(sample_id, keys.GRID_NAME)).startswith(b"\x89PNG")
