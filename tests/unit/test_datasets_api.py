"""/api/v1/datasets against the embedded defaults (SQLite, local folder), and specs using them."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.exc import IntegrityError

from api.datasets import MAX_UPLOAD_CONFIG
from shared.config import Settings
from shared.datasets import create_dataset
from shared.db import session_scope
from shared.models import User, new_id
from shared.storage import open_storage
from tests.data_builders import grey_pngs, image_bytes, write_npz, write_zip
from tests.helpers import auth, user_token

PROBLEM = "application/problem+json"


def upload(
    client: FlaskClient, token: str, path: Path, name: str = "my data", filename: str | None = None
) -> Any:
    form = {"file": (io.BytesIO(path.read_bytes()), filename or path.name), "name": name}
    return client.post(
        "/api/v1/datasets", data=form, headers=auth(token), content_type="multipart/form-data"
    )


def uploaded(client: FlaskClient, token: str, path: Path, **kwargs: Any) -> dict:
    response = upload(client, token, path, **kwargs)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def train_on(dataset_id: str, family: str = "dcgan", **data: Any) -> dict:
    return {
        "kind": "train",
        "name": "on upload",
        "spec": {
            "model": {"family": family, "width": 8},
            "data": {"source": "dataset", "dataset_id": dataset_id, **data},
        },
    }


def test_upload_checks_stores_and_describes_an_archive(
    client: FlaskClient, alice: str, settings: Settings, tmp_path: Path
) -> None:
    archive = write_zip(tmp_path / "digits.zip", grey_pngs(5, 32))
    response = upload(client, alice, archive, name="digits")
    assert response.status_code == 201
    dataset = response.get_json()
    assert response.headers["Location"] == f"/api/v1/datasets/{dataset['id']}"
    assert dataset["name"] == "digits" and dataset["filename"] == "digits.zip"
    assert (dataset["format"], dataset["kind"], dataset["items"]) == ("zip", "images", 5)
    assert dataset["shape"] == [1, 32, 32] and dataset["size"] == archive.stat().st_size
    stored = open_storage(settings).get(f"uploads/{dataset['id']}/digits.zip")
    assert stored == archive.read_bytes()
    fetched = client.get(dataset["links"]["self"], headers=auth(alice)).get_json()
    assert fetched == dataset


def test_list_shows_only_the_callers_datasets_newest_first(
    client: FlaskClient, alice: str, bob: str, tmp_path: Path
) -> None:
    path = write_npz(tmp_path / "ring.npz", data=np.zeros((10, 2), np.float32))
    first = uploaded(client, alice, path, name="first")
    second = uploaded(client, alice, path, name="second")
    uploaded(client, bob, path, name="bob's")
    listed = client.get("/api/v1/datasets", headers=auth(alice)).get_json()["datasets"]
    assert [d["id"] for d in listed] == [second["id"], first["id"]]
    assert listed[0]["kind"] == "points" and listed[0]["shape"] == [2]


def test_other_users_datasets_are_not_found(
    client: FlaskClient, alice: str, bob: str, tmp_path: Path
) -> None:
    dataset = uploaded(client, alice, write_zip(tmp_path / "a.zip", grey_pngs(2)))
    url = f"/api/v1/datasets/{dataset['id']}"
    for response in (client.get(url, headers=auth(bob)), client.delete(url, headers=auth(bob))):
        assert response.status_code == 404 and response.mimetype == PROBLEM
    assert client.get("/api/v1/datasets/nope", headers=auth(alice)).status_code == 404


def test_delete_removes_row_and_file(
    client: FlaskClient, alice: str, settings: Settings, tmp_path: Path
) -> None:
    dataset = uploaded(client, alice, write_zip(tmp_path / "a.zip", grey_pngs(2)))
    url = f"/api/v1/datasets/{dataset['id']}"
    assert client.delete(url, headers=auth(alice)).status_code == 204
    assert client.get(url, headers=auth(alice)).status_code == 404
    assert open_storage(settings).list(f"uploads/{dataset['id']}/") == []


def test_a_dataset_an_unfinished_job_or_sweep_reads_is_kept(
    client: FlaskClient, alice: str, settings: Settings, tmp_path: Path
) -> None:
    dataset = uploaded(client, alice, write_zip(tmp_path / "a.zip", grey_pngs(4)))
    url = f"/api/v1/datasets/{dataset['id']}"
    train = train_on(dataset["id"])
    job = client.post("/api/v1/jobs", json=train, headers=auth(alice)).get_json()["id"]
    sweep = {"base": train["spec"], "grid": {"train.seed": [0, 1]}, "max_parallel": 1}
    answer = client.post(
        "/api/v1/jobs", json={"kind": "sweep", "name": "s", "spec": sweep}, headers=auth(alice)
    )
    assert answer.status_code == 201, answer.get_json()

    refused = client.delete(url, headers=auth(alice))

    assert refused.status_code == 409 and refused.mimetype == "application/problem+json"
    assert (
        job in refused.get_json()["detail"]
        and answer.get_json()["id"] in refused.get_json()["detail"]
    )
    for queued in (job, answer.get_json()["id"]):
        client.post(f"/api/v1/jobs/{queued}/cancel", headers=auth(alice))
    assert client.delete(url, headers=auth(alice)).status_code == 204


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ({"../escape.png": image_bytes()}, "unsafe path"),
        ({"README.md": b"no images"}, "holds no PNG or JPEG images"),
        ({"a.png": b"garbage"}, "'a.png' cannot be decoded"),
    ],
)
def test_bad_archives_are_422_naming_the_file_field(
    client: FlaskClient, alice: str, tmp_path: Path, members: dict, reason: str
) -> None:
    response = upload(client, alice, write_zip(tmp_path / "bad.zip", members))
    assert response.status_code == 422 and response.mimetype == PROBLEM
    error = response.get_json()["errors"][0]
    assert error["path"] == "file" and "bad.zip" in error["message"] and reason in error["message"]
    assert client.get("/api/v1/datasets", headers=auth(alice)).get_json()["datasets"] == []


def test_missing_fields_unknown_formats_and_empty_files_are_refused(
    client: FlaskClient, alice: str, tmp_path: Path
) -> None:
    good = write_zip(tmp_path / "good.zip", grey_pngs(1))
    cases = [
        (upload(client, alice, good, name="  "), "name"),
        (upload(client, alice, good, filename="notes.txt"), "file"),
        (upload(client, alice, good, filename="../../"), "file"),
        (client.post("/api/v1/datasets", json={"name": "x"}, headers=auth(alice)), "file"),
    ]
    (tmp_path / "empty.npz").write_bytes(b"")
    cases.append((upload(client, alice, tmp_path / "empty.npz"), "file"))
    for response, field in cases:
        assert response.status_code == 422, response.get_json()
        assert response.get_json()["errors"][0]["path"] == field


def test_the_file_name_is_sanitised_before_it_reaches_a_key(
    client: FlaskClient, alice: str, tmp_path: Path
) -> None:
    archive = write_zip(tmp_path / "a.zip", grey_pngs(1))
    dataset = uploaded(client, alice, archive, filename="../my faces (v2).zip")
    assert dataset["filename"] == "my_faces_v2_.zip"


def test_uploads_over_the_limit_are_413(
    app: Flask, client: FlaskClient, alice: str, tmp_path: Path
) -> None:
    app.config[MAX_UPLOAD_CONFIG] = 1000
    path = write_npz(tmp_path / "big.npz", data=np.zeros((500, 2), np.float32))
    response = upload(client, alice, path)
    assert response.status_code == 413 and response.mimetype == PROBLEM
    assert response.get_json()["errors"][0]["path"] == "file"


def test_json_bodies_keep_their_small_limit(client: FlaskClient, alice: str) -> None:
    body = {"kind": "train", "name": "x" * (2 * 1024 * 1024), "spec": {}}
    assert client.post("/api/v1/jobs", json=body, headers=auth(alice)).status_code == 413


def test_a_train_spec_on_another_users_dataset_names_the_field(
    client: FlaskClient, alice: str, bob: str, tmp_path: Path
) -> None:
    dataset = uploaded(client, alice, write_zip(tmp_path / "a.zip", grey_pngs(2)))
    response = client.post("/api/v1/jobs", json=train_on(dataset["id"]), headers=auth(bob))
    assert response.status_code == 422 and response.mimetype == PROBLEM
    assert response.get_json()["errors"] == [
        {
            "path": "spec.data.dataset_id",
            "message": f"no dataset {dataset['id']!r} among your datasets",
        }
    ]
    unknown = train_on("f" * 32)
    assert client.post("/api/v1/jobs", json=unknown, headers=auth(alice)).status_code == 422
    response = client.post("/api/v1/jobs", json=train_on(dataset["id"]), headers=auth(alice))
    assert response.status_code == 201
    assert response.get_json()["spec"]["data"]["dataset_id"] == dataset["id"]


def test_a_dataset_must_fit_the_model_family(
    client: FlaskClient, alice: str, tmp_path: Path
) -> None:
    points = uploaded(client, alice, write_npz(tmp_path / "p.npz", data=np.zeros((9, 2))))
    images = uploaded(client, alice, write_zip(tmp_path / "i.zip", grey_pngs(2, 40)))
    cases = [
        (train_on(points["id"], "dcgan"), "spec.data.dataset_id", "dcgan needs image data"),
        (train_on(points["id"], "mlp", shape=[1]), "spec.data.shape", "yields [2]"),
        (train_on(images["id"], "dcgan"), "spec.data.resize", "40x40"),
        (train_on(images["id"], "mlp", resize=32), "spec", "mlp needs point data"),
    ]
    for body, path, message in cases:
        response = client.post("/api/v1/jobs", json=body, headers=auth(alice))
        assert response.status_code == 422, (body, response.get_json())
        error = response.get_json()["errors"][0]
        assert error["path"] == path and message in error["message"], error
    ok = train_on(images["id"], "dcgan", resize=32)
    assert client.post("/api/v1/jobs", json=ok, headers=auth(alice)).status_code == 201
    ok = train_on(points["id"], "mlp")
    assert client.post("/api/v1/jobs", json=ok, headers=auth(alice)).status_code == 201


def test_an_admin_shares_a_dataset_with_the_lab_read_only(
    client: FlaskClient, alice: str, bob: str, settings: Settings, tmp_path: Path
) -> None:
    admin = user_token(settings, "root", admin=True)
    dataset = uploaded(client, alice, write_zip(tmp_path / "d.zip", grey_pngs(4, 28)))
    share = f"/api/v1/datasets/{dataset['id']}/share"
    refused = client.post(share, json={"shared": True}, headers=auth(alice))
    assert refused.status_code == 403, "owners do not share with the lab; admins do"
    assert (
        client.post("/api/v1/jobs", json=train_on(dataset["id"]), headers=auth(bob)).status_code
        == 422
    )
    shared = client.post(share, json={"shared": True}, headers=auth(admin))
    assert shared.status_code == 200 and shared.get_json()["shared"] is True
    listed = client.get("/api/v1/datasets", headers=auth(bob)).get_json()["datasets"]
    assert [d["id"] for d in listed] == [dataset["id"]]
    job = client.post("/api/v1/jobs", json=train_on(dataset["id"]), headers=auth(bob))
    assert job.status_code == 201, job.get_json()
    gone = client.delete(f"/api/v1/datasets/{dataset['id']}", headers=auth(bob))
    assert gone.status_code == 404, "read-only for the lab"
    assert client.post(share, json={"shared": "yes"}, headers=auth(admin)).status_code == 422
    client.post(share, json={"shared": False}, headers=auth(admin))
    assert client.get("/api/v1/datasets", headers=auth(bob)).get_json()["datasets"] == []


def test_a_row_the_database_refuses_takes_its_stored_file_with_it(
    settings: Settings, tmp_path: Path
) -> None:
    """The file is stored before its row is written (a long upload holds no transaction);
    when the row is then refused, here for an owner the database does not know, the object
    is removed rather than left behind with nothing pointing at it."""
    store = open_storage(settings)
    data = write_npz(tmp_path / "r.npz", data=np.zeros((10, 2), np.float32)).open("rb")
    ghost = User(id=new_id(), name="ghost")
    with pytest.raises(IntegrityError), data, session_scope(settings.database_url) as session:
        create_dataset(session, store, ghost, name="d", filename="r.npz", stream=data)
    assert store.list("uploads/") == []
