"""The app factory: `create_app()` for gunicorn (`api.app:create_app()`), tests pass settings."""

from __future__ import annotations

from flask import Flask, has_request_context, request

from api import (
    code,
    compare,
    dashboard,
    datasets,
    guards,
    health,
    jobs,
    live,
    metrics,
    openapi,
    pool,
    state,
    tokens,
    usage,
    webhooks,
)
from api.problems import register_error_handlers
from shared.codebundles.bundles import MAX_UPLOAD_BYTES as MAX_CODE_UPLOAD_BYTES
from shared.config import Settings
from shared.datasets import MAX_UPLOAD_BYTES
from shared.hardening import harden_service_process
from shared.logs import add_context_source, configure_logging
from shared.storage import open_storage


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    harden_service_process()  # no same-uid process reads the API's environment or memory
    app = Flask("ganforge")
    # Largest JSON body we accept: a spec is a few hundred bytes; 1 MiB leaves room for long
    # seed lists without letting a client make us buffer arbitrary uploads. POST
    # /api/v1/datasets and POST /api/v1/code alone raise it, per request, to their own limits.
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    app.config.setdefault(datasets.MAX_UPLOAD_CONFIG, MAX_UPLOAD_BYTES)
    app.config.setdefault(code.MAX_UPLOAD_CONFIG, MAX_CODE_UPLOAD_BYTES)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    state.init_app(app, settings, open_storage(settings))
    register_error_handlers(app)
    guards.install(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(compare.bp)
    app.register_blueprint(live.bp)
    app.register_blueprint(datasets.bp)
    app.register_blueprint(code.bp)
    app.register_blueprint(tokens.bp)
    app.register_blueprint(usage.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(pool.pool_bp)
    app.register_blueprint(pool.admin_bp)
    app.register_blueprint(dashboard.bp)
    metrics.install(app)
    configure_logging(settings.log_format)
    add_context_source(_request_job)
    return app


def _request_job() -> tuple[str, int | None] | None:
    """Records logged while answering about one job carry its id (GANFORGE_LOG_FORMAT=json)."""
    if not has_request_context():
        return None
    job_id = (request.view_args or {}).get("job_id")
    return (job_id, None) if isinstance(job_id, str) else None
