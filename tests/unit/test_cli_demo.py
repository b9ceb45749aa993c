"""`ganforge demo`'s choices that need no service: the threads its worker's ranks get."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cli.demo import demo_settings


def _without_ganforge_settings(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    for name in [name for name in os.environ if name.startswith("GANFORGE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GANFORGE_HOME", str(home))


def test_the_demo_trains_on_one_torch_thread_unless_told(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _without_ganforge_settings(monkeypatch, tmp_path)
    settings = demo_settings(port=None)
    assert settings.to_env()["GANFORGE_TORCH_THREADS"] == "1"  # what its worker is started with
    assert settings.home == tmp_path


def test_the_demo_keeps_the_threads_the_environment_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _without_ganforge_settings(monkeypatch, tmp_path)
    monkeypatch.setenv("GANFORGE_TORCH_THREADS", "2")
    assert demo_settings(port=None).torch_threads == 2
