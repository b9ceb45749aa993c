"""`ganforge invert` against the real API served in-process: it builds the `invert` spec from
its flags, and a refused one exits 1 naming the field."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient

from tests.helpers import auth
from tests.unit.test_cli import JOB_ID, as_user
from tests.unit.test_datasets_api import uploaded
from tests.unit.test_inversion_specs import MNIST_GAN, _digits


def test_invert_submits_the_spec_its_flags_say_and_a_refusal_names_the_field(
    client: FlaskClient, api_url: str, alice: str, tmp_path: Path
) -> None:
    home = tmp_path / "cli-home"
    home.mkdir()
    request = {"kind": "train", "name": "g", "spec": MNIST_GAN}
    source = client.post("/api/v1/jobs", json=request, headers=auth(alice)).get_json()["id"]
    dataset = uploaded(client, alice, _digits(tmp_path))["id"]
    flags = ["invert", source, "--dataset", dataset, "--steps", "40", "--loss", "feature"]
    done = as_user(home, api_url, alice, *flags, "--indices", "3,1", "--no-watch")
    assert done.exit_code == 0, done.output
    [job_id] = JOB_ID.findall(done.output)
    spec = client.get(f"/api/v1/jobs/{job_id}", headers=auth(alice)).get_json()["spec"]
    assert spec["invert"]["images"] == {"dataset_id": dataset, "indices": [3, 1]}
    assert (spec["invert"]["steps"], spec["invert"]["loss"]) == (40, "feature")
    refused = as_user(home, api_url, alice, *flags, "--count", "9", "--no-watch")
    assert refused.exit_code == 1
    assert "spec.invert.images.count" in refused.output
    both = as_user(home, api_url, alice, "invert", source, "--no-watch")
    assert both.exit_code == 2 and "--dataset ID or --artifact JOB/NAME" in both.output
