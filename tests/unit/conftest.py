"""Unit fixtures: the embedded defaults (SQLite file, local folder, file-system broker)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.app import create_app
from shared.config import Settings
from shared.migrate import upgrade
from tests.helpers import user_token


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings.from_env({"GANFORGE_HOME": str(tmp_path / "home")})
    upgrade(settings.database_url)
    return settings


@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def alice(settings: Settings) -> str:
    return user_token(settings, "alice")


@pytest.fixture
def bob(settings: Settings) -> str:
    return user_token(settings, "bob")
