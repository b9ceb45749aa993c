"""/api/v1/code: upload a Python package (zip or tar.gz, multipart) to run as GAN plugins and
training scripts; list, read, share and delete bundles.

A bundle's id is the SHA-256 of the uploaded bytes, so a retried upload is recognised by
what it sends without an Idempotency-Key: the same bytes again answer 200 with the bundle
already recorded (201 the first time). Checks and storage: shared/codebundles/.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from api.auth import current_user, require_user
from api.problems import ApiProblem
from api.serializers import code_bundle_json
from api.state import db_session, settings, storage
from shared.codebundles import bundles
from shared.codebundles.bundles import CodeUploadError
from shared.runfolders import API_SERVICE, own_folder

bp = Blueprint("code", __name__, url_prefix="/api/v1/code")
bp.before_request(require_user)

# App config key of the largest upload in bytes (default `bundles.MAX_UPLOAD_BYTES`).
MAX_UPLOAD_CONFIG = "GANFORGE_MAX_CODE_UPLOAD_BYTES"
# What a multipart body adds around the file: boundaries, part headers, the name field.
_FORM_OVERHEAD = 64 * 1024


@bp.post("")
def upload() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Form fields: `file` (the archive) and, optionally, `name` (default: the file's name)."""
    limit = int(current_app.config.get(MAX_UPLOAD_CONFIG, bundles.MAX_UPLOAD_BYTES))
    request.max_content_length = limit + _FORM_OVERHEAD
    try:
        file, name = request.files.get("file"), request.form.get("name")
    except RequestEntityTooLarge:
        raise CodeUploadError("file", f"code bundles are limited to {limit} bytes", 413) from None
    if file is None or not file.filename:
        raise CodeUploadError("file", "send the archive as a multipart form field named 'file'")
    session = db_session()
    view, created = bundles.create_bundle(
        session,
        storage(),
        current_user(),
        name=name,
        filename=file.filename,
        stream=file.stream,
        max_bytes=limit,
        scratch=own_folder(settings(), API_SERVICE),
    )
    session.commit()
    location = {"Location": f"/api/v1/code/{view.bundle.id}"}
    return code_bundle_json(view, modules=True), 201 if created else 200, location


@bp.get("")
def list_bundles() -> dict[str, Any]:
    views = bundles.list_bundles(db_session(), current_user())
    return {"bundles": [code_bundle_json(view) for view in views]}


@bp.get("/<sha:code_id>")
def get(code_id: str) -> dict[str, Any]:
    view = bundles.get_bundle(db_session(), current_user(), code_id)
    return code_bundle_json(view, modules=True)


@bp.post("/<sha:code_id>/share")
def share(code_id: str) -> dict[str, Any]:
    """Admins: `{"shared": true}` lets the whole lab read and run the bundle (read-only: each
    owner still deletes only their own); `false` takes it back."""
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
    view = bundles.share_bundle(session, current_user(), code_id, shared)
    session.commit()
    return code_bundle_json(view, modules=True)


@bp.delete("/<sha:code_id>")
def delete(code_id: str) -> tuple[str, int]:
    session = db_session()
    bundles.delete_bundle(session, storage(), current_user(), code_id)
    session.commit()
    return "", 204
