"""Unit fixtures: the embedded defaults (SQLite file, local folder, file-system broker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import Settings
from shared.migrate import upgrade


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings.from_env({"GANFORGE_HOME": str(tmp_path / "home")})
    upgrade(settings.database_url)
    return settings
