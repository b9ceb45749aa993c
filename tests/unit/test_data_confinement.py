"""A job reads only what its owner may: worker paths under GANFORGE_DATA_ROOTS, resolved
through `..` and symlinks, refused with the same words whether or not the path exists."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from api.app import create_app
from shared.config import Settings
from shared.datafiles.roots import DataPathRefusedError, check_data_path, parse_roots
from shared.specs.data import DataSpec
from shared.storage import open_storage
from tests.helpers import auth, train_request, user_token
from worker.rank_inputs import JobInputError, fetch_data


@pytest.fixture
def lab(tmp_path: Path) -> dict[str, Path]:
    """A data root holding alice's file, a folder outside it, and a symlink out of it."""
    root, outside = tmp_path / "shared-data", tmp_path / "private" / "alice"
    root.mkdir()
    outside.mkdir(parents=True)
    (root / "ring.npz").write_bytes(b"x")
    (outside / "secret.npz").write_bytes(b"x")
    (root / "escape").symlink_to(outside)
    return {"root": root, "outside": outside}


def _client(settings: Settings, root: Path) -> FlaskClient:
    return create_app(settings.with_(data_roots=(root,))).test_client()


def _submit_path(client: FlaskClient, token: str, path: str) -> tuple[int, list[dict]]:
    body = train_request(data={"source": "npz", "path": path})
    response = client.post("/api/v1/jobs", json=body, headers=auth(token))
    return response.status_code, (response.get_json() or {}).get("errors", [])


def test_paths_outside_the_roots_are_a_422_that_does_not_say_whether_they_exist(
    settings: Settings, lab: dict[str, Path]
) -> None:
    client, token = _client(settings, lab["root"]), user_token(settings, "bob")
    refused = [
        str(lab["outside"] / "secret.npz"),  # exists, outside
        str(lab["outside"] / "nothing.npz"),  # does not exist, outside
        "/etc/passwd",
        "/proc/self/environ",
        "/root",
        str(lab["root"] / ".." / "private" / "alice" / "secret.npz"),  # .. out of the root
        str(lab["root"] / "escape" / "secret.npz"),  # a symlink out of the root
        "shared-data/ring.npz",  # relative
    ]
    messages = set()
    for path in refused:
        status, errors = _submit_path(client, token, path)
        assert status == 422, path
        assert [e["path"] for e in errors] == ["spec.data.path"], path
        messages.add(errors[0]["message"])
    assert len(messages) == 1, "one message for every refusal: nothing about existence"
    assert "GANFORGE_DATA_ROOTS" in messages.pop()


def test_paths_under_a_root_are_accepted(settings: Settings, lab: dict[str, Path]) -> None:
    client, token = _client(settings, lab["root"]), user_token(settings, "bob")
    assert _submit_path(client, token, str(lab["root"] / "ring.npz"))[0] == 201
    # The root itself may be named through a path that resolves into it.
    inside = str(lab["root"] / "escape" / ".." / "ring.npz")
    assert _submit_path(client, token, os.path.normpath(inside))[0] == 201


def test_no_path_at_all_is_readable_by_default(settings: Settings, lab: dict[str, Path]) -> None:
    client = create_app(settings).test_client()
    status, errors = _submit_path(client, user_token(settings, "bob"), str(lab["root"]))
    assert status == 422 and "none are configured" in errors[0]["message"]


def test_the_worker_checks_again_on_its_own_disk(settings: Settings, lab: dict[str, Path]) -> None:
    # A path that was inside when submitted and became a symlink out of the root since.
    (lab["root"] / "later").symlink_to(lab["outside"])
    data = DataSpec(source="npz", path=str(lab["root"] / "later" / "secret.npz"))
    with pytest.raises(JobInputError, match=r"spec\.data\.path: not a path this service may read"):
        fetch_data(data, open_storage(settings), lab["root"] / "work", (lab["root"],))
    inside = DataSpec(source="npz", path=str(lab["root"] / "ring.npz"))
    assert fetch_data(inside, open_storage(settings), lab["root"] / "w", (lab["root"],))


def test_roots_parse_from_the_environment(tmp_path: Path) -> None:
    assert parse_roots(f"{tmp_path}/a:{tmp_path}/b, {tmp_path}/c") == (
        tmp_path / "a",
        tmp_path / "b",
        tmp_path / "c",
    )
    assert parse_roots("") == ()
    with pytest.raises(DataPathRefusedError):
        check_data_path(str(tmp_path / "a" / "x"), ())
    settings = Settings.from_env({"GANFORGE_HOME": str(tmp_path), "GANFORGE_DATA_ROOTS": "/d"})
    assert Settings.from_env(settings.to_env()).data_roots == (Path("/d"),)
