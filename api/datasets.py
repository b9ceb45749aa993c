"""/api/v1/datasets: upload training data (multipart), list, read, delete."""

from __future__ import annotations

import hashlib
from typing import IO, Any

from flask import Blueprint, Response
from sqlalchemy.exc import IntegrityError

from api import idempotency
from api.auth import current_user, require_user
from api.forms import form_upload, requested_flag, requested_share_flag
from api.serializers import dataset_json
from api.state import db_session, settings, storage
from shared import datasets
from shared.datasets import DatasetUploadError
from shared.runfolders import API_SERVICE, own_folder
from shared.storage_quota import check_storage_quota

bp = Blueprint("datasets", __name__, url_prefix="/api/v1/datasets")
bp.before_request(require_user)

# App config key of the largest upload in bytes (default `datasets.MAX_UPLOAD_BYTES`). The
# app-wide MAX_CONTENT_LENGTH stays small for JSON bodies; only this route accepts files.
MAX_UPLOAD_CONFIG = "GANFORGE_MAX_UPLOAD_BYTES"


@bp.post("")
def upload() -> tuple[dict[str, Any], int, dict[str, str]] | Response:
    """Form fields: `file` (the data file), `name`, and optionally `shards` (true: store an
    archive of images as shards for streaming; false: as the archive; left out: shards once
    its images decode past `datasets.SHARD_UPLOADS_FROM_BYTES`)."""
    file, filename, name, limit = form_upload(
        MAX_UPLOAD_CONFIG, datasets.MAX_UPLOAD_BYTES, DatasetUploadError, "uploads", "the data"
    )
    shards = requested_flag("shards", DatasetUploadError)
    session, user, key = db_session(), current_user(), idempotency.requested_key()
    if key is not None:  # a retry is recognised by what it sends: name, file name, bytes, shards
        digest = _upload_hash(name, filename, file.stream, shards)
        first = idempotency.replay(session, user, key, UPLOAD_ROUTE, digest)
        if first is not None:
            return first
        file.stream.seek(0)
    check_storage_quota(session, user, settings().storage_quota_bytes, "uploads")
    dataset = datasets.create_dataset(
        session,
        storage(),
        user,
        name=name,
        filename=filename,
        stream=file.stream,
        max_bytes=limit,
        scratch=own_folder(settings(), API_SERVICE),
        shards=shards,
    )
    answer = dataset_json(dataset)
    if key is not None:
        idempotency.remember(session, user, key, UPLOAD_ROUTE, digest, 201, answer)
    try:
        session.commit()
    except IntegrityError:  # a copy of this request with the same key won the race
        session.rollback()
        datasets.delete_stored(storage(), dataset.id)
        first = idempotency.replay(session, user, key, UPLOAD_ROUTE, digest) if key else None
        if first is None:
            raise
        return first
    return answer, 201, {"Location": f"/api/v1/datasets/{dataset.id}"}


UPLOAD_ROUTE = "POST /api/v1/datasets"


def _upload_hash(name: str | None, filename: str, stream: IO[bytes], shards: bool | None) -> str:
    """The request's identity for idempotency. `shards` counts only when given, so a key
    stored before the field existed still matches its retry."""
    digest = hashlib.sha256()
    while chunk := stream.read(1024 * 1024):
        digest.update(chunk)
    parts = (name, filename, digest.hexdigest())
    return idempotency.request_hash(*parts, *(() if shards is None else (shards,)))


@bp.get("")
def list_datasets() -> dict[str, Any]:
    rows = datasets.list_datasets(db_session(), current_user())
    return {"datasets": [dataset_json(row) for row in rows]}


@bp.get("/<id:dataset_id>")
def get(dataset_id: str) -> dict[str, Any]:
    return dataset_json(datasets.get_dataset(db_session(), current_user(), dataset_id))


@bp.post("/<id:dataset_id>/share")
def share(dataset_id: str) -> dict[str, Any]:
    """Admins: `{"shared": true}` lets the whole lab read and train on the dataset (read-only:
    only its owner or an admin may delete it); `false` takes it back."""
    shared = requested_share_flag()
    session = db_session()
    dataset = datasets.share_dataset(session, current_user(), dataset_id, shared)
    session.commit()
    return dataset_json(dataset)


@bp.delete("/<id:dataset_id>")
def delete(dataset_id: str) -> tuple[str, int]:
    session = db_session()
    datasets.delete_dataset(session, storage(), current_user(), dataset_id)
    session.commit()
    return "", 204
