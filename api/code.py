"""/api/v1/code: upload a Python package (zip or tar.gz, multipart) to run as GAN plugins and
training scripts; list, read, share and delete bundles.

A bundle's id is the SHA-256 of the uploaded bytes, so a retried upload is recognised by
what it sends without an Idempotency-Key: the same bytes again answer 200 with the bundle
already recorded (201 the first time). Checks and storage: shared/codebundles/.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from api.auth import current_user, require_user
from api.forms import form_upload, requested_share_flag
from api.serializers import code_bundle_json
from api.state import db_session, settings, storage
from shared.codebundles import bundles
from shared.codebundles.bundles import CodeUploadError
from shared.runfolders import API_SERVICE, own_folder
from shared.storage_quota import check_storage_quota

bp = Blueprint("code", __name__, url_prefix="/api/v1/code")
bp.before_request(require_user)

# App config key of the largest upload in bytes (default `bundles.MAX_UPLOAD_BYTES`).
MAX_UPLOAD_CONFIG = "GANFORGE_MAX_CODE_UPLOAD_BYTES"


@bp.post("")
def upload() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Form fields: `file` (the archive) and, optionally, `name` (default: the file's name)."""
    file, filename, name, limit = form_upload(
        MAX_UPLOAD_CONFIG, bundles.MAX_UPLOAD_BYTES, CodeUploadError, "code bundles", "the archive"
    )
    session, user = db_session(), current_user()
    check_storage_quota(session, user, settings().storage_quota_bytes, "uploads")
    view, created = bundles.create_bundle(
        session,
        storage(),
        user,
        name=name,
        filename=filename,
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
    shared = requested_share_flag()
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
