"""The app factory: `create_app()` for gunicorn (`api.app:create_app()`), tests pass settings."""

from __future__ import annotations

import logging

from flask import Flask

from api import datasets, guards, health, jobs, openapi, pool, state, tokens
from api.problems import register_error_handlers
from shared.config import Settings
from shared.datasets import MAX_UPLOAD_BYTES
from shared.storage import open_storage


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask("ganforge")
    # Largest JSON body we accept: a spec is a few hundred bytes; 1 MiB leaves room for long
    # seed lists without letting a client make us buffer arbitrary uploads. POST
    # /api/v1/datasets alone raises it, per request, to its own limit.
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    app.config.setdefault(datasets.MAX_UPLOAD_CONFIG, MAX_UPLOAD_BYTES)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    state.init_app(app, settings, open_storage(settings))
    register_error_handlers(app)
    guards.install(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(datasets.bp)
    app.register_blueprint(tokens.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(pool.pool_bp)
    app.register_blueprint(pool.admin_bp)
    logging.basicConfig(level=logging.INFO)
    return app
