"""Request bodies the upload routes (datasets, code bundles) read alike: the multipart file,
bounded per route, and the `{"shared": ...}` of a share request."""

from __future__ import annotations

from flask import current_app, request
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge

from api.problems import ApiProblem

# What a multipart body adds around the file: boundaries, part headers, the name field.
FORM_OVERHEAD = 64 * 1024


def form_upload(
    config_key: str,
    default_limit: int,
    refuse: type[Exception],
    limited: str,
    missing: str,
) -> tuple[FileStorage, str, str | None, int]:
    """The form's `file`, its file name, the `name` field and the route's limit (app config
    `config_key`, else `default_limit`). `refuse(field, message[, status])` is raised with 413
    past the limit ("<limited> are limited to N bytes") and 422 without a file ("send
    <missing> as a multipart form field named 'file'")."""
    limit = int(current_app.config.get(config_key, default_limit))
    request.max_content_length = limit + FORM_OVERHEAD
    try:
        file, name = request.files.get("file"), request.form.get("name")
    except RequestEntityTooLarge:
        raise refuse("file", f"{limited} are limited to {limit} bytes", 413) from None
    if file is None or not file.filename:
        raise refuse("file", f"send {missing} as a multipart form field named 'file'")
    return file, file.filename, name, limit


# How a form field says yes or no.
_FORM_TRUE, _FORM_FALSE = ("true", "1", "yes"), ("false", "0", "no")


def requested_flag(field: str, refuse: type[Exception]) -> bool | None:
    """A yes/no form field: True, False, or None when it is left out; `refuse(field,
    message)` (a 422 naming it) for anything else."""
    raw = request.form.get(field)
    if raw is None or raw == "":
        return None
    if raw.lower() in _FORM_TRUE:
        return True
    if raw.lower() in _FORM_FALSE:
        return False
    raise refuse(field, f"must be true or false, got {raw[:20]!r}")


def requested_share_flag() -> bool:
    """`{"shared": true}` or `{"shared": false}`, and nothing else; a 422 naming the field
    otherwise."""
    body = request.get_json(silent=True)
    shared = body.get("shared") if isinstance(body, dict) else None
    if not isinstance(shared, bool) or set(body) != {"shared"}:  # type: ignore[arg-type]
        raise ApiProblem(
            422,
            "Invalid request",
            'send {"shared": true} or {"shared": false}',
            errors=[{"path": "shared", "message": "must be true or false"}],
        )
    return shared
