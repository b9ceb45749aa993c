"""A researcher's own training loop as a `script` job: what submission checks."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from cli.packing import zip_folder
from tests.helpers import auth

LOOP = Path(__file__).resolve().parents[2] / "examples" / "byo" / "script" / "ringloop"
STEPS = 40


def _script(code: str, entrypoint: str = "ringloop.train:main") -> dict[str, Any]:
    return {
        "code": code,
        "entrypoint": entrypoint,
        "args": {"steps": STEPS, "batch_size": 32, "width": 16, "checkpoint_every": 10,
                 "seconds_per_step": 0.05},
        "steps": STEPS,
        "resources": {"devices": 2, "preemptible": True},
    }  # fmt: skip


def _submit(client: FlaskClient, token: str, spec: dict[str, Any]) -> Any:
    body = {"kind": "script", "name": "loop", "spec": spec}
    return client.post("/api/v1/jobs", json=body, headers=auth(token))


def test_a_script_job_is_checked_at_submission(client: FlaskClient, alice: str, bob: str) -> None:
    """The bundle must be the submitter's and hold the entrypoint's module (the loop itself,
    preempted and resumed, is tests/e2e/test_byo_script.py's)."""
    packed = zip_folder(LOOP)
    uploaded = client.post(
        "/api/v1/code",
        data={"file": (io.BytesIO(packed.data), "ringloop.zip")},
        headers=auth(alice),
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 201, uploaded.get_json()
    code = uploaded.get_json()["id"]
    refused = _submit(client, alice, _script(code, "ringloop.nowhere:main"))
    assert refused.status_code == 422
    assert [e["path"] for e in refused.get_json()["errors"]] == ["spec.entrypoint"]
    assert _submit(client, bob, _script(code)).status_code == 422  # not bob's bundle
    submitted = _submit(client, alice, _script(code))
    assert submitted.status_code == 201, submitted.get_json()
    assert submitted.get_json()["kind"] == "script"
