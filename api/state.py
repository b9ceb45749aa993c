"""Per-app and per-request resources: settings, storage, and a database session per request."""

from __future__ import annotations

from celery import Celery
from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from api.token_cache import TokenCache
from shared.config import Settings
from shared.db import get_engine
from shared.messaging import make_celery
from shared.pool.admission import LiveNodes
from shared.storage import Storage


def settings() -> Settings:
    return current_app.extensions["ganforge.settings"]  # type: ignore[no-any-return]


def storage() -> Storage:
    return current_app.extensions["ganforge.storage"]  # type: ignore[no-any-return]


def celery() -> Celery:
    """The broker connection settings, built once per app (the API only probes the broker)."""
    return current_app.extensions["ganforge.celery"]  # type: ignore[no-any-return]


def token_cache() -> TokenCache:
    """This process's memory of recently accepted tokens (api/token_cache.py)."""
    return current_app.extensions["ganforge.token_cache"]  # type: ignore[no-any-return]


def live_nodes() -> LiveNodes:
    """This process's memory of the pool's live nodes, for admission (shared/pool/admission.py)."""
    return current_app.extensions["ganforge.live_nodes"]  # type: ignore[no-any-return]


def db_session() -> Session:
    """The request's session; committed by the view that changes data, closed at teardown."""
    if "db" not in g:
        g.db = Session(bind=get_engine(settings().database_url), expire_on_commit=False)
    return g.db  # type: ignore[no-any-return]


def init_app(app: Flask, app_settings: Settings, app_storage: Storage) -> None:
    app.extensions["ganforge.settings"] = app_settings
    app.extensions["ganforge.storage"] = app_storage
    app.extensions["ganforge.celery"] = make_celery(app_settings)
    app.extensions["ganforge.token_cache"] = TokenCache()
    app.extensions["ganforge.live_nodes"] = LiveNodes()

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("db", None)
        if session is not None:
            session.rollback()
            session.close()
