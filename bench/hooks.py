"""Training hooks for benchmarks: every outlet of the engine, doing nothing (subclasses keep
what they measure)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class QuietHooks:
    """`worker.gan.hooks.TrainingHooks` with every call dropped; nothing is cached."""

    def should_stop(self) -> bool:
        return False

    def report_progress(self, report: Any) -> None:
        pass

    def save_checkpoint(self, step: int, data: bytes) -> None:
        pass

    def save_samples(self, step: int, png: bytes) -> None:
        pass

    def log(self, line: str) -> None:
        pass

    def report_evaluation(self, step: int, metrics: dict[str, Any], png: bytes | None) -> None:
        pass

    def warn(self, message: str, stop: bool, kind: str = "collapse") -> None:
        pass

    def end_warning(self, kind: str, message: str) -> None:
        pass

    def cached(self, name: str, make: Callable[[], bytes]) -> bytes:
        return make()
