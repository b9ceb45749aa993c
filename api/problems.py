"""Every error leaves the API as application/problem+json (RFC 9457), mapped here, once."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json, request
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from api.counters import count_storage_error
from api.media_types import PROBLEM_JSON
from shared.codebundles.bundles import (
    CodeBundleInUseError,
    CodeBundleNotFoundError,
    CodeUploadError,
)
from shared.datasets import DatasetInUseError, DatasetNotFoundError, DatasetUploadError
from shared.db import is_unreachable
from shared.jobs.requests import (
    InvalidCursorError,
    JobConflictError,
    JobNotFoundError,
    PermissionDeniedError,
)
from shared.pool.nodes import NodeBusyError, NodeNotFoundError
from shared.pool.overview import QuotaExceededError
from shared.specs import SpecError
from shared.states import InvalidTransitionError
from shared.storage import StorageError, StorageUnavailableError
from shared.storage_quota import StorageQuotaExceededError
from shared.users import TokenNotFoundError
from shared.webhooks.subscriptions import WebhookNotFoundError

log = logging.getLogger(__name__)

# Seconds a client should wait before retrying while the database is unreachable: about one
# PostgreSQL restart; clients back off further themselves.
RETRY_AFTER_S = 5


class ApiProblem(Exception):
    """Raise from a view to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ):
        super().__init__(detail)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra
        self.headers = headers or {}


def problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiProblem)
    def _api_problem(exc: ApiProblem) -> Response:
        response = problem(exc.status, exc.title, exc.detail, **exc.extra)
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(SpecError)
    def _spec_error(exc: SpecError) -> Response:
        return problem(422, "Invalid job request", str(exc), errors=exc.problems)

    @app.errorhandler(TokenNotFoundError)
    def _token_not_found(exc: TokenNotFoundError) -> Response:
        return problem(404, "Token not found", str(exc))

    @app.errorhandler(WebhookNotFoundError)
    def _webhook_not_found(exc: WebhookNotFoundError) -> Response:
        return problem(404, "Webhook not found", str(exc))

    @app.errorhandler(JobNotFoundError)
    def _not_found(exc: JobNotFoundError) -> Response:
        return problem(404, "Job not found", f"no job {exc.job_id!r} among your jobs")

    @app.errorhandler(DatasetNotFoundError)
    def _dataset_not_found(exc: DatasetNotFoundError) -> Response:
        return problem(404, "Dataset not found", str(exc))

    @app.errorhandler(CodeBundleNotFoundError)
    def _code_not_found(exc: CodeBundleNotFoundError) -> Response:
        return problem(404, "Code bundle not found", str(exc))

    @app.errorhandler(CodeBundleInUseError)
    def _code_in_use(exc: CodeBundleInUseError) -> Response:
        return problem(409, "Conflict", str(exc), jobs=exc.job_ids)

    @app.errorhandler(DatasetUploadError)
    @app.errorhandler(CodeUploadError)
    def _bad_upload(exc: DatasetUploadError | CodeUploadError) -> Response:
        title = "Upload too large" if exc.status == 413 else "Invalid upload"
        errors = [{"path": exc.field, "message": exc.message}]
        return problem(exc.status, title, f"{exc.field}: {exc.message}", errors=errors)

    @app.errorhandler(NodeNotFoundError)
    def _node_not_found(exc: NodeNotFoundError) -> Response:
        return problem(404, "Node not found", str(exc))

    @app.errorhandler(QuotaExceededError)
    def _over_quota(exc: QuotaExceededError) -> Response:
        return problem(429, "Over quota", str(exc))

    @app.errorhandler(StorageQuotaExceededError)
    def _over_storage_quota(exc: StorageQuotaExceededError) -> Response:
        # 413, not 403: the CLI reads 401/403 as "not authorised", which this is not.
        return problem(
            413,
            "Storage quota exceeded",
            str(exc),
            quota_bytes=exc.quota,
            usage_bytes=exc.usage,
        )

    @app.errorhandler(PermissionDeniedError)
    def _forbidden(exc: PermissionDeniedError) -> Response:
        return problem(403, "Forbidden", str(exc))

    @app.errorhandler(JobConflictError)
    @app.errorhandler(DatasetInUseError)
    @app.errorhandler(NodeBusyError)
    @app.errorhandler(InvalidTransitionError)
    def _conflict(exc: Exception) -> Response:
        return problem(409, "Conflict", str(exc))

    @app.errorhandler(InvalidCursorError)
    def _bad_cursor(exc: InvalidCursorError) -> Response:
        return problem(
            400,
            "Invalid query parameter",
            str(exc),
            errors=[{"path": "cursor", "message": "not a cursor returned by this API"}],
        )

    @app.errorhandler(StorageError)
    def _storage(exc: StorageError) -> Response:
        log.error("storage error: %s", exc)
        count_storage_error("request")
        response = problem(503, "Storage unavailable", str(exc))
        if isinstance(exc, StorageUnavailableError):  # worth a retry, unlike a missing bucket
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response

    @app.errorhandler(DBAPIError)
    def _database(exc: DBAPIError) -> Response:
        if not is_unreachable(exc):
            return _unexpected(exc)
        log.warning("database unreachable: %s", exc.orig)
        response = problem(
            503,
            "Database unavailable",
            "the job database cannot be reached right now; nothing was changed, try again",
        )
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        response = problem(exc.code or 500, exc.name, exc.description or exc.name)
        for name, value in exc.get_headers():  # a 405's Allow, a 413's Retry-After
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.before_request
    def _redirect_as_problem() -> None:
        """Werkzeug's slash redirects (`/ui` to `/ui/`, `//` merged to `/`) are returned by
        Flask as its HTML page, past every error handler; raised here, before any view or
        check, they are problems like every other answer that is not a success."""
        redirect = request.routing_exception
        if isinstance(redirect, RequestRedirect):
            raise ApiProblem(
                redirect.code,
                "Redirect",
                f"this resource is at {redirect.new_url}",
                headers={"Location": redirect.new_url},
            )

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return problem(500, "Internal error", "an unexpected error occurred; it has been logged")
