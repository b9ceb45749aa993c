"""/api/v1/datasets: upload training data (multipart), list, read, delete."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from api.auth import current_user, require_user
from api.serializers import dataset_json
from api.state import db_session, storage
from shared import datasets
from shared.datasets import DatasetUploadError

bp = Blueprint("datasets", __name__, url_prefix="/api/v1/datasets")
bp.before_request(require_user)

# App config key of the largest upload in bytes (default `datasets.MAX_UPLOAD_BYTES`). The
# app-wide MAX_CONTENT_LENGTH stays small for JSON bodies; only this route accepts files.
MAX_UPLOAD_CONFIG = "GANFORGE_MAX_UPLOAD_BYTES"
# What a multipart body adds around the file: boundaries, part headers, the name field.
_FORM_OVERHEAD = 64 * 1024


@bp.post("")
def upload() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Form fields: `file` (the data file) and `name`."""
    limit = int(current_app.config.get(MAX_UPLOAD_CONFIG, datasets.MAX_UPLOAD_BYTES))
    request.max_content_length = limit + _FORM_OVERHEAD
    try:
        file, name = request.files.get("file"), request.form.get("name")
    except RequestEntityTooLarge:
        raise DatasetUploadError("file", f"uploads are limited to {limit} bytes", 413) from None
    if file is None or not file.filename:
        raise DatasetUploadError("file", "send the data as a multipart form field named 'file'")
    session = db_session()
    dataset = datasets.create_dataset(
        session,
        storage(),
        current_user(),
        name=name,
        filename=file.filename,
        stream=file.stream,
        max_bytes=limit,
    )
    session.commit()
    return dataset_json(dataset), 201, {"Location": f"/api/v1/datasets/{dataset.id}"}


@bp.get("")
def list_datasets() -> dict[str, Any]:
    rows = datasets.list_datasets(db_session(), current_user())
    return {"datasets": [dataset_json(row) for row in rows]}


@bp.get("/<id:dataset_id>")
def get(dataset_id: str) -> dict[str, Any]:
    return dataset_json(datasets.get_dataset(db_session(), current_user(), dataset_id))


@bp.delete("/<id:dataset_id>")
def delete(dataset_id: str) -> tuple[str, int]:
    session = db_session()
    datasets.delete_dataset(session, storage(), current_user(), dataset_id)
    session.commit()
    return "", 204
