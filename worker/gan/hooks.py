"""How the training loop talks to the outside world: a hooks object the caller provides.

The loop knows nothing of Celery, databases or object stores; the worker task implements
`TrainingHooks` to map a stop flag, progress reports and artifact uploads onto them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ProgressReport:
    """Where training stands; metrics are means since the previous report.

    Metric names follow StyleGAN's statistics: `Loss/D/loss`, `Loss/G/loss`, `Loss/D/reg`
    (WGAN-GP's gradient penalty before λ, else 0), `Loss/scores/real`, `Loss/scores/fake`,
    `Timing/sec_per_step`; a vae reports
    `Loss/VAE/elbo`, `Loss/VAE/recon` and `Loss/VAE/kl` in place of the GAN losses.
    """

    step: int
    total_steps: int
    images_per_second: float
    metrics: dict[str, float] = field(default_factory=dict)


class TrainingHooks(Protocol):
    """The loop's only outlets. All but `should_stop` are called on rank 0 only."""

    def should_stop(self) -> bool:
        """Asked on every rank every `STOP_CHECK_EVERY` steps; any rank's True stops all."""
        ...

    def report_progress(self, report: ProgressReport) -> None:
        """Every `REPORT_EVERY` steps and at the last step."""
        ...

    def save_checkpoint(self, step: int, data: bytes) -> None:
        """Every `checkpoint_every` steps, at the last step and when stopped early."""
        ...

    def save_samples(self, step: int, png: bytes) -> None:
        """A PNG of the generator on the fixed latents, every `sample_every` and last step."""
        ...

    def log(self, line: str) -> None:
        """A human-readable line: the start, every report and the end."""
        ...

    def report_evaluation(self, step: int, metrics: dict[str, Any], png: bytes | None) -> None:
        """Quality metrics (worker/gan/evaluation.py) and their picture (toy data), every
        `eval_every` steps and at the last step."""
        ...

    def cached(self, name: str, make: Callable[[], bytes]) -> bytes:
        """Bytes kept between jobs under `name` (a trained evaluation classifier): the stored
        copy, or `make()`'s, stored for the next job."""
        ...

    def warn(self, message: str, stop: bool, kind: str = "collapse") -> None:
        """A warning about the run (mode collapse) that begins at the latest evaluation;
        `kind` names it (worker/gan/collapse_alarm.py), so that it can end; `stop`: end the
        run at the next stop check, its checkpoint kept, and fail the job with `message`."""
        ...

    def end_warning(self, kind: str, message: str) -> None:
        """The open warning of `kind`, if there is one, no longer holds at the latest
        evaluation (`message` says why); a later one of the same kind begins anew. Also
        called where none may be open: a resumed run's alarm does not know which warnings an
        earlier attempt left open."""
        ...
