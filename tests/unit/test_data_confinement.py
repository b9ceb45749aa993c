"""A job reads only what its owner may: worker paths under GANFORGE_DATA_ROOTS, resolved
through `..` and symlinks, refused with the same words whether or not the path exists; and
every file read under such a path is checked where it lies once opened, so a member that is
a link out of the roots (or a file swapped for one after the check) is refused by name."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient

from api.app import create_app
from shared.config import Settings
from shared.datafiles.formats import DataFileError, read_images
from shared.datafiles.roots import DataPathRefusedError, check_data_path, parse_roots
from shared.specs.data import DataSpec
from shared.storage import open_storage
from tests.data_builders import grey_pngs, image_bytes, write_npz
from tests.helpers import auth, train_request, user_token
from worker.agent.inputs import fetch_data
from worker.gan.data import load_samples
from worker.gan.errors import DataError
from worker.gan.mnist_files import load_mnist_images
from worker.rank_inputs import JobInputError, confined_reads


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


def _read_as_the_worker(settings: Settings, lab: dict[str, Path], data: DataSpec) -> int:
    """The samples a job on `data` reads, as the worker reads them (confined to the root)."""
    store, work = open_storage(settings), lab["root"].parent / "work"
    roots = (lab["root"],)
    with confined_reads(data, fetch_data(data, store, work, roots), roots) as path:
        return len(load_samples(data, path)[0])


def _image_folder(lab: dict[str, Path], real: int, linked_out: int) -> Path:
    """root/faces with `real` images of its own and `linked_out` links to images outside."""
    faces = lab["root"] / "faces"
    faces.mkdir()
    for name, data in grey_pngs(real).items():
        (faces / name).write_bytes(data)
    for name, data in grey_pngs(linked_out, prefix="link").items():
        (lab["outside"] / name).write_bytes(data)
        (faces / name).symlink_to(lab["outside"] / name)
    return faces


@pytest.mark.parametrize(("real", "linked_out"), [(3, 1), (0, 2)], ids=["some", "all"])
def test_an_image_folder_whose_members_link_out_of_the_root_fails_naming_field_and_member(
    settings: Settings, lab: dict[str, Path], real: int, linked_out: int
) -> None:
    faces = _image_folder(lab, real, linked_out)
    data = DataSpec(source="images", path=str(faces))
    with pytest.raises(DataError) as refused:
        _read_as_the_worker(settings, lab, data)
    message = str(refused.value)
    assert message.startswith("spec.data.path: member 'link000.png' of faces points outside")
    assert str(lab["outside"]) not in message, "the link's target is not told"


def test_an_mnist_folder_whose_idx_file_links_out_of_the_root_fails(
    settings: Settings, lab: dict[str, Path]
) -> None:
    digits = lab["root"] / "mnist"
    digits.mkdir()
    shipped = Path(__file__).resolve().parents[1] / "data" / "mnist"
    (digits / "t10k-images-idx3-ubyte.gz").symlink_to(shipped / "t10k-4000-images-idx3-ubyte.gz")
    data = DataSpec(source="mnist", path=str(digits))
    with pytest.raises(DataError, match=r"^spec\.data\.path: t10k-images-idx3-ubyte\.gz points"):
        _read_as_the_worker(settings, lab, data)
    # Outside any job's confinement the same folder reads: the check is the job's roots.
    assert len(load_mnist_images(digits)) == 4000


def test_links_that_stay_inside_the_root_are_followed(
    settings: Settings, lab: dict[str, Path]
) -> None:
    faces = _image_folder(lab, real=2, linked_out=0)
    pool = lab["root"] / "pool"
    pool.mkdir()
    (pool / "shared.png").write_bytes(image_bytes(28, value=9))
    (faces / "shared.png").symlink_to(pool / "shared.png")
    (faces / "escape").symlink_to(lab["outside"], target_is_directory=True)  # not walked
    (lab["outside"] / "secret.png").write_bytes(image_bytes(28))
    assert _read_as_the_worker(settings, lab, DataSpec(source="images", path=str(faces))) == 3


def test_a_file_swapped_for_a_link_after_the_check_is_refused_when_opened(
    settings: Settings, lab: dict[str, Path]
) -> None:
    """The check is made on the opened file, not on the name checked before."""
    points = lab["root"] / "points.npz"
    write_npz(points, data=np.zeros((8, 2), np.float32))
    write_npz(lab["outside"] / "secret.npz", data=np.ones((8, 2), np.float32))
    data = DataSpec(source="npz", path=str(points))
    store, work = open_storage(settings), lab["root"].parent / "work"
    roots = (lab["root"],)
    with confined_reads(data, fetch_data(data, store, work, roots), roots) as path:
        assert path == points  # checked: inside the root
        swapped = lab["root"] / "swap"
        swapped.symlink_to(lab["outside"] / "secret.npz")
        swapped.replace(points)  # now a link out, under the checked name
        with pytest.raises(DataError, match=r"^spec\.data\.path: points\.npz points outside"):
            load_samples(data, path)


def test_outside_a_job_a_folder_is_read_without_following_members_out_of_it(
    tmp_path: Path,
) -> None:
    folder, elsewhere = tmp_path / "faces", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    (folder / "a.png").write_bytes(image_bytes(28))
    (elsewhere / "b.png").write_bytes(image_bytes(28))
    (folder / "b.png").symlink_to(elsewhere / "b.png")
    with pytest.raises(DataFileError, match=r"member 'b\.png' of faces points outside faces"):
        read_images(folder, "faces", None, None)
