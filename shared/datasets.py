"""Uploaded datasets: check an upload, store it, record it; list, read and delete them.

An upload is checked with `shared.datafiles.formats` (the same reader the worker trains from) before
anything is stored, so a broken archive fails at upload with a message naming the problem, not
hours later on a GPU node. Datasets belong to their uploader: other users' are not found.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import IO

from pydantic import ValidationError
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from shared.datafiles.formats import (
    DataFileError,
    DataInfo,
    describe_sizes,
    detect_format,
    inspect_data,
)
from shared.dataset_shards import (
    SHARD_UPLOADS_FROM_BYTES,
    SHARDABLE_FORMATS,
    SHARDS_FORMAT,
    decoded_bytes,
    delete_stored,
    index_key,
    store_shards,
)
from shared.jobs.readers import jobs_reading_dataset
from shared.models import Dataset, User, new_id
from shared.specs import SpecError, TrainSpec, problems_from
from shared.specs.data import IMAGE_SIZES, IMAGE_SIZES_TEXT
from shared.storage import Storage, StorageError
from shared.storage.keys import DATASET_FILENAME, dataset_key
from shared.uploads import copy_and_hash
from shared.users import PermissionDeniedError

# 2 GiB: MNIST's training set as PNGs is ~20 MB and CIFAR-10 ~150 MB, so this leaves room for
# real lab data sets while keeping one upload a minutes-long transfer, not an hours-long one.
MAX_UPLOAD_BYTES = 2 * 1024**3
MAX_NAME_LENGTH = 200
# Copy and hash uploads in 1 MiB reads: memory stays flat however large the file.
_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


class DatasetNotFoundError(LookupError):
    """No dataset with that id belongs to the caller."""

    def __init__(self, dataset_id: str):
        super().__init__(f"no dataset {dataset_id!r} among your datasets")
        self.dataset_id = dataset_id


class DatasetInUseError(RuntimeError):
    """A dataset that an unfinished job still reads is not deleted (409)."""


class DatasetUploadError(ValueError):
    """An upload was refused; `field` is the form field at fault (file or name)."""

    def __init__(self, field: str, message: str, status: int = 422):
        super().__init__(message)
        self.field, self.message, self.status = field, message, status


def safe_filename(raw: str) -> str:
    """A client's file name as we store it: its last path part, odd characters as `_`.

    DatasetUploadError when nothing usable is left or the name says no known format.
    """
    base = raw.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE_CHARACTERS.sub("_", base).lstrip("._-")
    if len(cleaned) > 128:  # keep the end: it carries the format (.tar.gz)
        cleaned = cleaned[-128:].lstrip("._-")
    if not cleaned or not DATASET_FILENAME.fullmatch(cleaned) or ".." in cleaned:
        raise DatasetUploadError("file", f"the file name {raw!r} has no usable characters")
    if detect_format(cleaned) is None:
        raise DatasetUploadError(
            "file",
            f"{raw!r}: upload an .npz, a .zip, .tar, .tar.gz or .tgz of PNG/JPEG images, or "
            "an idx3 file (*-idx3-ubyte, optionally .gz)",
        )
    return cleaned


def check_name(name: str | None) -> str:
    """The dataset's name, checked before a byte of the file is stored: a name the database
    refuses (PostgreSQL stores no NUL) would otherwise fail after the upload, leaving its
    object behind."""
    name = (name or "").strip()
    if not name:
        raise DatasetUploadError("name", "give the dataset a name")
    if len(name) > MAX_NAME_LENGTH:
        raise DatasetUploadError("name", f"at most {MAX_NAME_LENGTH} characters")
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise DatasetUploadError("name", "must not contain control characters (NUL, newlines)")
    return name


def create_dataset(
    session: Session,
    store: Storage,
    owner: User,
    *,
    name: str | None,
    filename: str,
    stream: IO[bytes],
    max_bytes: int = MAX_UPLOAD_BYTES,
    scratch: Path | None = None,
    shards: bool | None = None,
) -> Dataset:
    """Check an uploaded file, store it under `uploads/<id>/<filename>`, and record it.

    An archive of images is stored as shards instead (`dataset_shards`, format "shards")
    when `shards` is True, or when it is None and the images decode to more than
    SHARD_UPLOADS_FROM_BYTES: workers then stream it rather than read it whole. The file is
    copied into a folder in `scratch` while it is checked: the caller's own
    (shared/runfolders.py), so a copy left by a killed process is found and removed."""
    name = check_name(name)
    filename = safe_filename(filename)
    with tempfile.TemporaryDirectory(prefix="upload-", dir=scratch) as folder:
        path = Path(folder) / filename
        size, sha256 = copy_and_hash(
            stream,
            path,
            max_bytes,
            lambda: DatasetUploadError(
                "file", f"uploads are limited to {max_bytes} bytes", status=413
            ),
        )
        if size == 0:
            raise DatasetUploadError("file", f"{filename}: the file is empty")
        try:
            info = inspect_data(path, filename)
        except DataFileError as exc:
            raise DatasetUploadError("file", str(exc)) from None
        dataset_id = new_id()
        sharded = _shards_wanted(shards, info)
        dataset = Dataset(
            id=dataset_id,
            owner_id=owner.id,
            name=name,
            filename=filename,
            key=index_key(dataset_id) if sharded else dataset_key(dataset_id, filename),
        )
        _describe(dataset, info, size, sha256)
        if sharded:
            dataset.format = SHARDS_FORMAT
            try:
                dataset.size = store_shards(store, dataset_id, path, filename, Path(folder) / "s")
            except DataFileError as exc:
                raise DatasetUploadError("file", str(exc)) from None
        else:
            with path.open("rb") as file:
                store.put(dataset.key, file)
    session.add(dataset)
    try:
        session.flush()
    except Exception:  # the row was refused: its objects must not outlive it
        with contextlib.suppress(StorageError):  # the database's error is the one to answer
            delete_stored(store, dataset.id)
        raise
    return dataset


def _shards_wanted(requested: bool | None, info: DataInfo) -> bool:
    """Whether to store the upload as shards (see `create_dataset`); DatasetUploadError
    naming `shards` when asked for data that is not an archive of images."""
    shardable = info.kind == "images" and info.format in SHARDABLE_FORMATS
    if requested and not shardable:
        raise DatasetUploadError(
            "shards",
            f"only archives of images (.zip, .tar) are stored as shards, not {info.format} "
            f"{info.kind}",
        )
    if requested is not None:
        return requested
    return shardable and decoded_bytes(info) > SHARD_UPLOADS_FROM_BYTES


def _describe(dataset: Dataset, info: DataInfo, size: int, sha256: str) -> None:
    dataset.size, dataset.sha256 = size, sha256
    dataset.format, dataset.kind, dataset.items = info.format, info.kind, info.count
    dataset.shape = list(info.shape) if info.shape is not None else None


def get_dataset(
    session: Session, owner: User, dataset_id: str, *, to_change: bool = False
) -> Dataset:
    """The dataset, if `owner` may read it (theirs, or shared with the lab) or, with
    `to_change`, change it (theirs; an admin: any)."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise DatasetNotFoundError(dataset_id)
    mine = dataset.owner_id == owner.id
    if to_change and not (mine or owner.is_admin):
        raise DatasetNotFoundError(dataset_id)
    if not to_change and not (mine or dataset.shared or owner.is_admin):
        raise DatasetNotFoundError(dataset_id)
    return dataset


def share_dataset(session: Session, admin: User, dataset_id: str, shared: bool) -> Dataset:
    """Share a dataset with the whole lab, read-only, or stop sharing it (admins only; a
    dataset the caller cannot see is not found rather than forbidden)."""
    dataset = get_dataset(session, admin, dataset_id)
    if not admin.is_admin:
        raise PermissionDeniedError("only admins share datasets with the lab")
    dataset.shared = shared
    session.flush()
    return dataset


def list_datasets(session: Session, owner: User) -> list[Dataset]:
    """The owner's datasets and those shared with the lab, newest first."""
    query = (
        select(Dataset)
        .where(or_(Dataset.owner_id == owner.id, Dataset.shared.is_(True)))
        .order_by(Dataset.created_at.desc(), Dataset.id.desc())
    )
    return list(session.scalars(query))


def delete_dataset(session: Session, store: Storage, owner: User, dataset_id: str) -> None:
    """Remove the row and the stored file; refused (JobConflictError, naming them) while an
    unfinished job (or a sweep's base) names the dataset: it would fail to fetch it."""
    dataset = get_dataset(session, owner, dataset_id, to_change=True)
    readers = jobs_reading_dataset(session, dataset.id)
    if readers:
        raise DatasetInUseError(
            f"dataset {dataset.id} is read by unfinished jobs {', '.join(readers)}: cancel "
            "them or wait for them to finish"
        )
    delete_stored(store, dataset.id)
    session.delete(dataset)
    session.flush()


def check_spec_fits_dataset(session: Session, owner: User, spec: TrainSpec) -> None:
    """For `source: dataset`: the dataset must be the owner's and fit the model family and
    image options; otherwise SpecError naming spec.data... (422, as for a sampling job that
    names a job that is not the caller's)."""
    data = spec.data
    if data.dataset_id is None:
        return
    path = "spec.data.dataset_id"
    try:
        dataset = get_dataset(session, owner, data.dataset_id)
    except DatasetNotFoundError:
        _refuse(path, f"no dataset {data.dataset_id!r} among your datasets")
    if dataset.kind == "points" and (data.resize or data.channels):
        _refuse(path, f"dataset {dataset.id} holds points; resize and channels apply to images")
    shape = _shape_after_options(spec, dataset)
    if shape is None:
        return
    if data.shape is not None and tuple(data.shape) != shape:
        _refuse("spec.data.shape", f"dataset {dataset.id} yields {list(shape)}")
    try:
        TrainSpec.model_validate(
            {**spec.model_dump(), "data": {**data.model_dump(exclude_none=True), "shape": shape}}
        )
    except ValidationError as exc:
        yields = f"dataset {dataset.id} yields {list(shape)}"
        problems = [
            {"path": path, "message": f"{yields}: {p['message']}"} for p in problems_from(exc)
        ]
        raise SpecError(problems) from None


def _shape_after_options(spec: TrainSpec, dataset: Dataset) -> tuple[int, ...] | None:
    """One sample's shape once resize and channels apply; None when unknown until loaded."""
    data = spec.data
    if dataset.kind == "points":
        return tuple(dataset.shape) if dataset.shape else None
    if dataset.shape is None and data.resize is None:
        _refuse(
            "spec.data.resize",
            f"dataset {dataset.id} holds images of mixed sizes; set resize to {IMAGE_SIZES_TEXT}",
        )
    if dataset.shape is None:
        return None
    channels, height, width = dataset.shape
    if data.resize is None and (height != width or height not in IMAGE_SIZES):
        _refuse(
            "spec.data.resize",
            f"dataset {dataset.id} holds {describe_sizes({(height, width): dataset.items})}; "
            f"dcgan makes {IMAGE_SIZES_TEXT} px square images: set resize",
        )
    side = data.resize or height
    return (data.channels or channels, side, side)


def _refuse(path: str, message: str) -> None:
    raise SpecError([{"path": path, "message": message}])
