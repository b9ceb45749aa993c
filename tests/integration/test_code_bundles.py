"""Code bundles on the real services (PostgreSQL rows, the archive in moto S3): one stored
object per content and one row per owner, owner isolation and admin sharing, deletion refused
while unfinished jobs name a bundle, the submission check, and hostile archives refused with
a 4xx naming `file` and nothing stored."""

from __future__ import annotations

import hashlib
import io
import random
import stat
import struct
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from api.code import MAX_UPLOAD_CONFIG
from shared.codebundles.references import check_code_reference
from shared.config import Settings
from shared.db import session_scope
from shared.models import CodeBundle, Job, User
from shared.specs import SpecError
from shared.storage import Storage
from tests.helpers import auth, user_token

PROBLEM = "application/problem+json"
PACKAGE = {
    "mygan/__init__.py": b"",
    "mygan/nets.py": b"class Generator: ...\n",
    "tools.py": b"",
    "README.md": b"notes",
}


def zipped(members: dict[str, bytes] | list[tuple[str, bytes]], mode: int | None = None) -> bytes:
    """A zip of `members` (pairs may repeat a name); `mode` (with its file-type bits) is
    given to each member."""
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of a duplicate name, which we want
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in members.items() if isinstance(members, dict) else members:
                info = zipfile.ZipInfo(name)
                if mode is not None:
                    info.external_attr = mode << 16
                archive.writestr(info, data)
    return out.getvalue()


def tarred(members: dict[str, bytes], link: str | None = None) -> bytes:
    """A tar.gz of `members`; `link` adds a symlink member of that name to /etc/passwd."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        if link is not None:
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            archive.addfile(info)
    return out.getvalue()


def lying_zip(payload: bytes, declared: int) -> bytes:
    """A zip whose one member holds `payload` while both its headers say `declared` bytes and
    carry the CRC of that much: read only as far as declared, it looks whole."""
    raw = bytearray(zipped({"big.py": payload}))
    local, central = raw.find(b"PK\x03\x04"), raw.find(b"PK\x01\x02")
    crc = zlib.crc32(payload[:declared])
    for at, size_at, crc_at in ((local, 22, 14), (central, 24, 16)):
        struct.pack_into("<I", raw, at + size_at, declared)
        struct.pack_into("<I", raw, at + crc_at, crc)
    return bytes(raw)


def encrypted_zip() -> bytes:
    """A zip whose member says it is encrypted (flag bit 0 in both headers)."""
    raw = bytearray(zipped({"secret.py": b"x = 1\n"}))
    raw[raw.find(b"PK\x03\x04") + 6] |= 1
    raw[raw.find(b"PK\x01\x02") + 8] |= 1
    return bytes(raw)


def upload(
    client: FlaskClient, token: str, data: bytes, filename: str = "mygan.zip", **form: str
) -> Any:
    body = {"file": (io.BytesIO(data), filename), **form}
    return client.post(
        "/api/v1/code", data=body, headers=auth(token), content_type="multipart/form-data"
    )


def uploaded(
    client: FlaskClient, token: str, data: bytes, status: int = 201, **kwargs: Any
) -> dict:
    response = upload(client, token, data, **kwargs)
    assert response.status_code == status, response.get_json()
    return response.get_json()


@pytest.fixture
def store(app: Flask) -> Storage:
    """The app's own store (a new S3 client costs a good part of a second)."""
    return app.extensions["ganforge.storage"]  # type: ignore[no-any-return]


def stored_keys(store: Storage) -> list[str]:
    return [info.key for info in store.list("code/")]


def test_one_object_per_content_and_one_row_per_owner(
    client: FlaskClient, alice: str, bob: str, store: Storage
) -> None:
    data = zipped(PACKAGE)
    sha = hashlib.sha256(data).hexdigest()
    first = uploaded(client, alice, data, name="my gan")
    assert (first["id"], first["sha256"], first["name"], first["owner"]) == (
        sha,
        sha,
        "my gan",
        "alice",
    )
    assert first["modules"] == ["mygan", "mygan.nets", "tools"]
    assert (first["files"], first["format"], first["size"]) == (4, "zip", len(data))
    again = uploaded(client, alice, data, status=200, name="renamed?")
    assert (again["id"], again["name"]) == (sha, "my gan"), "the bundle alice already had"
    bobs = uploaded(client, bob, data)
    assert (bobs["id"], bobs["owner"], bobs["name"]) == (sha, "bob", "mygan")
    assert stored_keys(store) == [f"code/{sha}/bundle.zip"]
    for token, owner in ((alice, "alice"), (bob, "bob")):
        listed = client.get("/api/v1/code", headers=auth(token)).get_json()["bundles"]
        assert [(b["id"], b["owner"]) for b in listed] == [(sha, owner)]
        assert "modules" not in listed[0]

    assert client.delete(f"/api/v1/code/{sha}", headers=auth(alice)).status_code == 204
    assert client.get(f"/api/v1/code/{sha}", headers=auth(alice)).status_code == 404
    assert stored_keys(store) == [f"code/{sha}/bundle.zip"], "bob's row keeps the object"
    assert client.get(f"/api/v1/code/{sha}", headers=auth(bob)).get_json()["owner"] == "bob"
    assert client.delete(f"/api/v1/code/{sha}", headers=auth(bob)).status_code == 204
    assert stored_keys(store) == []


def test_another_users_bundle_is_not_found_until_an_admin_shares_it(
    client: FlaskClient, alice: str, bob: str, settings: Settings
) -> None:
    admin = user_token(settings, "root", admin=True)
    sha = uploaded(client, alice, tarred(PACKAGE), filename="mygan.tar.gz")["id"]
    url = f"/api/v1/code/{sha}"
    assert client.get(url, headers=auth(bob)).status_code == 404
    assert client.get("/api/v1/code", headers=auth(bob)).get_json()["bundles"] == []
    assert client.delete(url, headers=auth(bob)).status_code == 404
    assert client.post(url + "/share", json={"shared": True}, headers=auth(bob)).status_code == 404
    assert (
        client.post(url + "/share", json={"shared": True}, headers=auth(alice)).status_code == 403
    )

    shared = client.post(url + "/share", json={"shared": True}, headers=auth(admin))
    assert shared.status_code == 200 and shared.get_json()["shared"] is True
    seen = client.get(url, headers=auth(bob)).get_json()
    assert (seen["owner"], seen["format"], seen["modules"]) == (
        "alice",
        "tar.gz",
        ["mygan", "mygan.nets", "tools"],
    )
    assert [
        b["id"] for b in client.get("/api/v1/code", headers=auth(bob)).get_json()["bundles"]
    ] == [sha]
    assert client.delete(url, headers=auth(bob)).status_code == 404, "shared is read-only"
    client.post(url + "/share", json={"shared": False}, headers=auth(admin))
    assert client.get(url, headers=auth(bob)).status_code == 404


def _job(owner_id: str, state: str, spec: dict[str, Any], kind: str = "train") -> Job:
    return Job(
        owner_id=owner_id, kind=kind, name="uses code", spec=spec, state=state, max_attempts=1
    )


def test_a_bundle_unfinished_jobs_name_is_not_deleted_and_the_409_names_them(
    client: FlaskClient, alice: str, settings: Settings, store: Storage
) -> None:
    sha = uploaded(client, alice, zipped(PACKAGE))["id"]
    with session_scope(settings.database_url) as session:
        owner = session.scalar(select(User.id).where(User.name == "alice"))
        assert owner is not None
        train = _job(owner, "queued", {"model": {"code": sha, "generator": "mygan.nets"}})
        script = _job(owner, "running", {"code": sha}, kind="script")
        done = _job(owner, "succeeded", {"code": sha}, kind="script")
        other = _job(owner, "queued", {"model": {"family": "mlp"}})
        session.add_all([train, script, done, other])
        session.flush()
        using = {train.id, script.id}
    refused = client.delete(f"/api/v1/code/{sha}", headers=auth(alice))
    assert refused.status_code == 409 and refused.mimetype == PROBLEM
    assert set(refused.get_json()["jobs"]) == using
    assert all(job_id in refused.get_json()["detail"] for job_id in using)
    with session_scope(settings.database_url) as session:
        session.execute(update(Job).where(Job.id.in_(using)).values(state="cancelled"))
    assert client.delete(f"/api/v1/code/{sha}", headers=auth(alice)).status_code == 204
    assert stored_keys(store) == []


def test_a_spec_naming_a_bundle_is_checked_field_by_field(
    client: FlaskClient, alice: str, bob: str, settings: Settings
) -> None:
    sha = uploaded(client, alice, zipped(PACKAGE))["id"]
    with session_scope(settings.database_url) as session:
        users = {u.name: u for u in session.scalars(select(User))}
        fields = {"generator": "mygan.nets:Generator", "discriminator": "mygan.nets"}
        view = check_code_reference(session, users["alice"], sha, fields, "spec.model")
        assert view.bundle.id == sha
        check_code_reference(session, users["alice"], sha, ["tools"], "spec")

        def problems(owner: str, code_id: str, modules: Any) -> list[dict[str, str]]:
            with pytest.raises(SpecError) as refused:
                check_code_reference(session, users[owner], code_id, modules, "spec.model")
            return refused.value.problems

        assert problems("bob", sha, []) == [
            {"path": "spec.model.code", "message": f"no code bundle {sha} among yours"}
        ]
        assert problems("alice", "nope\0", [])[0]["path"] == "spec.model.code"
        missing = problems("alice", sha, {"generator": "mygan.gone", "discriminator": "a..b"})
        assert missing == [
            {
                "path": "spec.model.generator",
                "message": f"module mygan.gone is not in bundle {sha}",
            },
            {
                "path": "spec.model.discriminator",
                "message": "'a..b' names no module (like mygan.nets)",
            },
        ]
        assert session.scalar(select(CodeBundle.name)) == "mygan"


def _too_many_files() -> bytes:
    return zipped({f"m{i}.py": b"" for i in range(10_001)})


HOSTILE: dict[str, tuple[Callable[[], bytes], str, str]] = {
    "a symlink member (tar)": (
        lambda: tarred({"ok.py": b""}, link="evil.py"),
        "x.tar.gz",
        "'evil.py' is a link",
    ),
    "a symlink member (zip)": (
        lambda: zipped({"evil.py": b"/etc/passwd"}, mode=stat.S_IFLNK | 0o777),
        "x.zip",
        "'evil.py' is a link",
    ),
    "a name climbing out": (lambda: zipped({"../x.py": b""}), "x.zip", "unsafe path ('..')"),
    "an absolute name": (lambda: tarred({"/etc/x.py": b""}), "x.tar.gz", "unsafe path (absolute"),
    "two members of one name": (
        lambda: zipped([("a.py", b"1"), ("a.py", b"2")]),
        "x.zip",
        "'a.py' appears twice",
    ),
    "more than 10,000 files": (_too_many_files, "x.zip", "more than 10000 files"),
    "a member bigger than its directory says": (
        lambda: lying_zip(bytes(4 * 1024 * 1024), declared=100),
        "x.zip",
        "holds more than the 100 bytes its directory entry says",
    ),
    "an encrypted member": (encrypted_zip, "x.zip", "'secret.py' is encrypted"),
    "no Python file": (lambda: zipped({"README.md": b"hi"}), "x.zip", "holds no .py file"),
    "not an archive": (lambda: b"print('hi')\n", "x.zip", "not a zip or tar.gz archive"),
}


def test_each_hostile_archive_is_a_422_naming_file_and_stores_nothing(
    client: FlaskClient, alice: str, store: Storage
) -> None:
    """One test for the lot: each case is one request, and the app's set-up (an S3 client)
    would cost more than all of them."""
    for case, (build, filename, fragment) in HOSTILE.items():
        refused = upload(client, alice, build(), filename=filename)
        assert refused.status_code == 422 and refused.mimetype == PROBLEM, (
            case,
            refused.get_json(),
        )
        (error,) = refused.get_json()["errors"]
        assert error["path"] == "file" and fragment in error["message"], (case, error)
    assert stored_keys(store) == []
    assert client.get("/api/v1/code", headers=auth(alice)).get_json()["bundles"] == []


def test_an_upload_over_the_limit_is_a_413(
    app: Flask, client: FlaskClient, alice: str, store: Storage
) -> None:
    app.config[MAX_UPLOAD_CONFIG] = 1000
    refused = upload(client, alice, zipped({"big.py": random.Random(0).randbytes(5000)}))
    assert refused.status_code == 413 and refused.mimetype == PROBLEM
    assert refused.get_json()["errors"][0]["path"] == "file"
    assert stored_keys(store) == []
