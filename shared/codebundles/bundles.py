"""Code bundles: check an uploaded archive, store it once per content, record who has it; list,
read, share and delete them.

The id of a bundle is the SHA-256 of the archive's bytes as uploaded. The content lives once
(`CodeArchive`: one row and one stored object per SHA-256, with what it holds), and each user
who uploaded it has their own `CodeBundle` row (their name for it, their upload time): the same
bytes uploaded twice by one user answer the existing bundle; by two users, each has a row of
their own and the object is shared. Reading follows datasets: your own bundles, those an admin
shared with the lab (a share is of the content, whoever uploaded it), and for admins every one;
another user's unshared bundle is not found. Deleting removes your row, and the archive with its
object when the last row goes. Uploads and deletions of one content take the archive row's lock
(SELECT ... FOR UPDATE), so an object is never deleted under an upload that is recording it.
"""

from __future__ import annotations

import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from sqlalchemy import Table, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shared.codebundles import archive as archives
from shared.codebundles.modules import has_python, importable_modules
from shared.codebundles.usage import jobs_using
from shared.models import Base, CodeArchive, CodeBundle, User
from shared.storage import Storage
from shared.storage.keys import code_key
from shared.uploads import copy_and_hash
from shared.users import PermissionDeniedError

MAX_UPLOAD_BYTES = archives.MAX_PACKED_BYTES
MAX_NAME_LENGTH = 200
# Copy and hash uploads in 1 MiB reads.
_SUFFIXES = (".tar.gz", ".tgz", ".zip")


class CodeUploadError(ValueError):
    """An upload was refused; `field` is the form field at fault (file or name), `status`
    the HTTP status (413 for too large, else 422)."""

    def __init__(self, field: str, message: str, status: int = 422):
        super().__init__(message)
        self.field, self.message, self.status = field, message, status


class CodeBundleNotFoundError(LookupError):
    """No bundle with that id is the caller's (or shared with the lab)."""

    def __init__(self, code_id: str):
        super().__init__(f"no code bundle {code_id!r} among yours")
        self.code_id = code_id


class CodeBundleInUseError(RuntimeError):
    """Unfinished jobs name the bundle; deleting it would fail them."""

    def __init__(self, code_id: str, job_ids: list[str]):
        shown = ", ".join(job_ids[:10]) + (
            f" and {len(job_ids) - 10} more" if len(job_ids) > 10 else ""
        )
        super().__init__(
            f"code bundle {code_id} is used by unfinished jobs {shown}: cancel them or wait "
            "until they end"
        )
        self.code_id, self.job_ids = code_id, job_ids


@dataclass(frozen=True)
class BundleView:
    """A bundle as the caller sees it: the owner's row, the content's, the owner's name."""

    bundle: CodeBundle
    archive: CodeArchive
    owner: str


def create_bundle(
    session: Session,
    store: Storage,
    owner: User,
    *,
    name: str | None,
    filename: str,
    stream: IO[bytes],
    max_bytes: int = MAX_UPLOAD_BYTES,
    scratch: Path | None = None,
) -> tuple[BundleView, bool]:
    """Record an uploaded archive as one of `owner`'s bundles; True when the row is new, False
    when they had uploaded these bytes already (that bundle is returned, unchanged).

    A content seen for the first time is checked (shared/codebundles/archive.py) and stored
    under `code/<sha256>/bundle.<format>`; content already stored was checked when it came.
    The upload is copied to a folder in `scratch` (the caller's own, shared/runfolders.py)."""
    label = _base_name(filename) or "upload"
    name = _bundle_name(name, label)
    with tempfile.TemporaryDirectory(prefix="code-", dir=scratch) as folder:
        path = Path(folder) / "bundle"
        size, sha256 = copy_and_hash(
            stream,
            path,
            max_bytes,
            lambda: CodeUploadError(
                "file", f"code bundles are limited to {max_bytes} bytes", status=413
            ),
        )
        if size == 0:
            raise CodeUploadError("file", f"{label}: the file is empty")
        mine = session.get(CodeBundle, (sha256, owner.id))
        if mine is not None:
            archive = session.get(CodeArchive, sha256)
            assert archive is not None  # a bundle row keeps its archive (foreign key)
            return BundleView(mine, archive, owner.name), False
        archive = _locked_archive(session, sha256)
        if archive is None:
            archive = _store_archive(session, store, path, sha256, size, label)
    created = _insert_new(session, CodeBundle, {"id": sha256, "owner_id": owner.id, "name": name})
    bundle = session.get(CodeBundle, (sha256, owner.id))
    assert bundle is not None  # inserted now, or by a copy of this request that came first
    return BundleView(bundle, archive, owner.name), created


def _store_archive(
    session: Session, store: Storage, path: Path, sha256: str, size: int, label: str
) -> CodeArchive:
    """Check a content new to us, record its row and store its object; returns the row,
    locked (a copy uploaded at the same moment waits for this one, then finds it)."""
    with path.open("rb") as file:
        fmt = archives.detect_format(file.read(4))
    if fmt is None:
        raise CodeUploadError("file", f"{label}: not a zip or tar.gz archive")
    try:
        summary = archives.summarize(path, fmt, label)
    except archives.ArchiveError as exc:
        raise CodeUploadError("file", str(exc)) from None
    if not has_python(summary.files):
        raise CodeUploadError("file", f"{label}: holds no .py file")
    values: dict[str, Any] = {
        "sha256": sha256,
        "key": code_key(sha256, fmt),
        "format": fmt,
        "size": size,
        "unpacked_size": summary.unpacked_bytes,
        "files": len(summary.files),
        "modules": importable_modules(summary.files),
    }
    if _insert_new(session, CodeArchive, values):
        # A failure from here on rolls the row back; an object left behind holds these very
        # bytes, so the next upload of them writes it again unharmed.
        with path.open("rb") as file:
            store.put(values["key"], file)
    archive = _locked_archive(session, sha256)
    assert archive is not None  # ours, or the one a concurrent upload committed first
    return archive


def _locked_archive(session: Session, sha256: str) -> CodeArchive | None:
    query = select(CodeArchive).where(CodeArchive.sha256 == sha256).with_for_update()
    return session.scalar(query.execution_options(populate_existing=True))


def _insert_new(session: Session, model: type[Base], values: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING: True when the row is new (RETURNING gives it back;
    psycopg reports no row count here). A concurrent insert of the same key waits for the
    other transaction to end (PostgreSQL) instead of failing this one."""
    table = cast(Table, model.__table__)
    statement: postgresql.Insert | sqlite.Insert
    if session.get_bind().dialect.name == "postgresql":
        statement = postgresql.insert(table).values(**values).on_conflict_do_nothing()
    else:
        statement = sqlite.insert(table).values(**values).on_conflict_do_nothing()
    return session.execute(statement.returning(*table.primary_key.columns)).first() is not None


def _base_name(filename: str) -> str:
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c for c in base if unicodedata.category(c) != "Cc").strip()[:MAX_NAME_LENGTH]


def _bundle_name(name: str | None, label: str) -> str:
    """The name given (checked) or, without one, the file's name less its suffix."""
    if name is None or not name.strip():
        lower = label.lower()
        suffix = next((s for s in _SUFFIXES if lower.endswith(s)), "")
        return label[: len(label) - len(suffix)] or "bundle"
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise CodeUploadError("name", f"at most {MAX_NAME_LENGTH} characters")
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise CodeUploadError("name", "must not contain control characters (NUL, newlines)")
    return name


def get_bundle(session: Session, caller: User, code_id: str) -> BundleView:
    """The bundle as `caller` may read it: their own row; else, for content shared with the
    lab (or for an admin), its first uploader's. CodeBundleNotFoundError otherwise."""
    archive = session.get(CodeArchive, code_id)
    if archive is None:
        raise CodeBundleNotFoundError(code_id)
    mine = session.get(CodeBundle, (code_id, caller.id))
    if mine is not None:
        return BundleView(mine, archive, caller.name)
    if archive.shared or caller.is_admin:
        first = session.execute(
            select(CodeBundle, User.name)
            .join(User, User.id == CodeBundle.owner_id)
            .where(CodeBundle.id == code_id)
            .order_by(CodeBundle.created_at, CodeBundle.owner_id)
            .limit(1)
        ).first()
        if first is not None:
            return BundleView(first[0], archive, first[1])
    raise CodeBundleNotFoundError(code_id)


def list_bundles(session: Session, caller: User) -> list[BundleView]:
    """The caller's bundles and the contents shared with the lab (each once, as its first
    uploader's), newest first."""
    rows = session.execute(
        select(CodeBundle, CodeArchive, User.name)
        .join(CodeArchive, CodeArchive.sha256 == CodeBundle.id)
        .join(User, User.id == CodeBundle.owner_id)
        .where(or_(CodeBundle.owner_id == caller.id, CodeArchive.shared.is_(True)))
        .order_by(CodeBundle.created_at, CodeBundle.owner_id)
    ).all()
    mine = {bundle.id for bundle, _, _ in rows if bundle.owner_id == caller.id}
    views: dict[tuple[str, str], BundleView] = {}
    shown: set[str] = set()
    for bundle, archive, owner in rows:
        if bundle.owner_id != caller.id and (bundle.id in mine or bundle.id in shown):
            continue
        shown.add(bundle.id)
        views[(bundle.id, bundle.owner_id)] = BundleView(bundle, archive, owner)
    return sorted(views.values(), key=lambda v: (v.bundle.created_at, v.bundle.id), reverse=True)


def share_bundle(session: Session, admin: User, code_id: str, shared: bool) -> BundleView:
    """Share a bundle's content with the whole lab, read-only, or stop (admins only; a bundle
    the caller cannot see is not found rather than forbidden)."""
    view = get_bundle(session, admin, code_id)
    if not admin.is_admin:
        raise PermissionDeniedError("only admins share code bundles with the lab")
    view.archive.shared = shared
    session.flush()
    return view


def delete_bundle(session: Session, store: Storage, caller: User, code_id: str) -> None:
    """Remove the caller's bundle row (an admin's own, or, for an admin who has none, every
    owner's), and the archive and its object once no row is left. CodeBundleInUseError while
    unfinished jobs that would lose it name it: the caller's own jobs, or, when the content
    goes, anyone's."""
    archive = session.scalar(
        select(CodeArchive).where(CodeArchive.sha256 == code_id).with_for_update()
    )
    if archive is None:
        raise CodeBundleNotFoundError(code_id)
    mine = session.get(CodeBundle, (code_id, caller.id))
    if mine is not None:
        doomed = [mine]
    elif caller.is_admin:
        doomed = list(session.scalars(select(CodeBundle).where(CodeBundle.id == code_id)))
    else:
        raise CodeBundleNotFoundError(code_id)
    owners = {row.owner_id for row in doomed}
    remaining = session.scalar(
        select(func.count())
        .select_from(CodeBundle)
        .where(CodeBundle.id == code_id, CodeBundle.owner_id.not_in(owners))
    )
    users = None if not remaining else owners
    in_use = jobs_using(session, code_id, users)
    if in_use:
        raise CodeBundleInUseError(code_id, in_use)
    for row in doomed:
        session.delete(row)
    session.flush()
    if not remaining:
        store.delete(archive.key)  # under the lock: no upload of it is recording it now
        session.delete(archive)
        session.flush()
