"""/api/v1/datasets: upload training data (multipart), list, read, delete."""

from __future__ import annotations

import hashlib
from typing import IO, Any

from flask import Blueprint, Response, current_app, request
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import RequestEntityTooLarge

from api import idempotency
from api.auth import current_user, require_user
from api.problems import ApiProblem
from api.serializers import dataset_json
from api.state import db_session, settings, storage
from shared import datasets
from shared.datasets import DatasetUploadError
from shared.runfolders import API_SERVICE, own_folder

bp = Blueprint("datasets", __name__, url_prefix="/api/v1/datasets")
bp.before_request(require_user)

# App config key of the largest upload in bytes (default `datasets.MAX_UPLOAD_BYTES`). The
# app-wide MAX_CONTENT_LENGTH stays small for JSON bodies; only this route accepts files.
MAX_UPLOAD_CONFIG = "GANFORGE_MAX_UPLOAD_BYTES"
# What a multipart body adds around the file: boundaries, part headers, the name field.
_FORM_OVERHEAD = 64 * 1024


@bp.post("")
def upload() -> tuple[dict[str, Any], int, dict[str, str]] | Response:
    """Form fields: `file` (the data file) and `name`."""
    limit = int(current_app.config.get(MAX_UPLOAD_CONFIG, datasets.MAX_UPLOAD_BYTES))
    request.max_content_length = limit + _FORM_OVERHEAD
    try:
        file, name = request.files.get("file"), request.form.get("name")
    except RequestEntityTooLarge:
        raise DatasetUploadError("file", f"uploads are limited to {limit} bytes", 413) from None
    if file is None or not file.filename:
        raise DatasetUploadError("file", "send the data as a multipart form field named 'file'")
    session, user, key = db_session(), current_user(), idempotency.requested_key()
    if key is not None:  # a retry is recognised by what it sends: name, file name, bytes
        digest = _upload_hash(name, file.filename, file.stream)
        first = idempotency.replay(session, user, key, UPLOAD_ROUTE, digest)
        if first is not None:
            return first
        file.stream.seek(0)
    dataset = datasets.create_dataset(
        session,
        storage(),
        user,
        name=name,
        filename=file.filename,
        stream=file.stream,
        max_bytes=limit,
        scratch=own_folder(settings(), API_SERVICE),
    )
    answer = dataset_json(dataset)
    if key is not None:
        idempotency.remember(session, user, key, UPLOAD_ROUTE, digest, 201, answer)
    try:
        session.commit()
    except IntegrityError:  # a copy of this request with the same key won the race
        session.rollback()
        storage().delete(dataset.key)
        first = idempotency.replay(session, user, key, UPLOAD_ROUTE, digest) if key else None
        if first is None:
            raise
        return first
    return answer, 201, {"Location": f"/api/v1/datasets/{dataset.id}"}


UPLOAD_ROUTE = "POST /api/v1/datasets"


def _upload_hash(name: str | None, filename: str, stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(1024 * 1024):
        digest.update(chunk)
    return idempotency.request_hash(name, filename, digest.hexdigest())


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
    body = request.get_json(silent=True)
    shared = body.get("shared") if isinstance(body, dict) else None
    if not isinstance(shared, bool) or set(body) != {"shared"}:  # type: ignore[arg-type]
        raise ApiProblem(
            422,
            "Invalid request",
            'send {"shared": true} or {"shared": false}',
            errors=[{"path": "shared", "message": "must be true or false"}],
        )
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
