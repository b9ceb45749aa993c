"""Per-app and per-request resources: settings, storage, and a database session per request."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar

from celery import Celery
from flask import Flask, Request, current_app, g, request
from sqlalchemy import Engine
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


View = TypeVar("View", bound=Callable[..., object])
# The attribute `statement_atomic` sets on a view: its predicate of the request.
_STATEMENT_ATOMIC = "ganforge_statement_atomic"


def statement_atomic(when: Callable[[Request], bool]) -> Callable[[View], View]:
    """Mark a view whose every write, for the requests `when` accepts, is one statement: its
    session then runs without a transaction (PostgreSQL's autocommit), each statement atomic
    by itself. That saves the BEGIN and COMMIT round trips, two of a plain submission's four
    (bench/api.py). `when` sees the request before any hook has touched the database (the
    token lookup is the first statement), so it may read headers and the body only."""

    def mark(view: View) -> View:
        setattr(view, _STATEMENT_ATOMIC, when)
        return view

    return mark


def db_session() -> Session:
    """The request's session; committed by the view that changes data, closed at teardown.
    Without a transaction where the view is `statement_atomic` for this request."""
    if "db" not in g:
        engine = get_engine(settings().database_url)
        if engine.dialect.name == "postgresql" and _is_statement_atomic():
            engine = _autocommit(engine)
        g.db = Session(bind=engine, expire_on_commit=False)
    return g.db  # type: ignore[no-any-return]


def _is_statement_atomic() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    when = getattr(view, _STATEMENT_ATOMIC, None)
    return when is not None and bool(when(request))


@lru_cache(maxsize=8)
def _autocommit(engine: Engine) -> Engine:
    """`engine` (its pool shared) with every statement committed as it runs."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


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
