"""The pictures a run draws of itself: the fixed-noise timeline GIF, TensorBoard event files
and the loss and metric curves (worker/timeline.py, worker/tensorboard_log.py,
worker/gan/curves_plot.py)."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from tests.helpers import tensorboard_image_tags, tensorboard_scalars
from worker.gan import curves_plot
from worker.gan.curves_plot import curves_figure, curves_png
from worker.gan.point_pictures import (
    GENERATED_COLOUR,
    TRUE_DENSITY_FILL,
    gaussian_mixture_density,
    point_view,
)
from worker.gan.point_pictures import scatter_png as point_png
from worker.reporter import JobReporter
from worker.tensorboard_log import EVAL_PREFIX, TensorBoardLog
from worker.timeline import MAX_FRAME_SIDE, MAX_FRAMES, Timeline


def _png(shade: int, size: int = 40) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), (shade, shade, shade)).save(out, format="PNG")
    return out.getvalue()


def _frames(gif: bytes) -> list[Image.Image]:
    return [frame.convert("RGB") for frame in ImageSequence.Iterator(Image.open(io.BytesIO(gif)))]


def test_timeline_is_one_labelled_frame_per_snapshot_in_step_order() -> None:
    timeline = Timeline()
    assert timeline.gif() is None
    for step, shade in ((200, 40), (100, 200), (300, 120)):
        timeline.add(step, _png(shade))
    gif = timeline.gif()
    assert gif is not None and gif[:6] == b"GIF89a"
    frames = _frames(gif)
    assert len(frames) == 3
    # Frames follow the steps (100, 200, 300): their grid part carries that frame's shade.
    shades = [frame.getpixel((20, frame.height - 5))[0] for frame in frames]
    assert shades[0] > shades[2] > shades[1]
    # Each frame has a label strip above the grid, with dark text on white.
    assert frames[0].height > 40 and frames[0].crop((0, 0, 40, 12)).getextrema()[0][0] < 128


def test_a_256px_runs_snapshot_becomes_a_frame_no_longer_than_the_bound() -> None:
    timeline = Timeline()
    timeline.add(100, _png(90, size=8 * 258 + 2))  # an 8x8 grid of 256 px images
    timeline.add(200, _png(90, size=8 * 30 + 2))  # and of 28 px ones, kept whole
    [large, small] = _frames(timeline.gif() or b"")
    assert large.width == MAX_FRAME_SIDE and small.size == large.size  # padded to one size
    assert timeline.frames[1][1].width == 8 * 30 + 2
    assert large.getpixel((MAX_FRAME_SIDE // 2, large.height - 5)) == (90, 90, 90)


def test_a_resumed_timeline_continues_the_previous_one_and_replaces_a_redrawn_step() -> None:
    first = Timeline()
    first.add(100, _png(10))
    first.add(200, _png(20))
    resumed = Timeline(first.gif())
    resumed.add(200, _png(250))  # the resumed attempt redraws step 200
    resumed.add(300, _png(30))
    frames = _frames(resumed.gif() or b"")
    assert len(frames) == 3
    assert frames[1].getpixel((20, frames[1].height - 5))[0] > 200
    assert Timeline(b"not a gif").frames == []


def test_a_long_timeline_is_thinned_but_keeps_its_first_and_last_frames() -> None:
    timeline = Timeline()
    for step in range(1, MAX_FRAMES + 2):
        timeline.add(step * 10, _png(step % 256, size=8))
    steps = [step for step, _ in timeline.frames]
    assert len(steps) <= MAX_FRAMES
    assert steps[0] == 10 and steps[-1] == (MAX_FRAMES + 1) * 10


def test_tensorboard_event_file_holds_the_scalars_and_images(tmp_path: Path) -> None:
    log = TensorBoardLog(tmp_path / "tb")
    assert tensorboard_scalars(log.event_file()) == {}
    log.scalars(10, {"Loss/D/loss": 1.25, "Loss/G/loss": 0.5})
    log.scalars(20, {"Loss/D/loss": 1.0, "Loss/G/loss": 0.75})
    log.scalars(
        20, {"high_quality": 0.9, "mode_counts": [1, 2], "kl_from_uniform": None}, EVAL_PREFIX
    )
    log.image("samples", 20, _png(99))
    events = log.event_file()
    assert events is not None
    scalars = tensorboard_scalars(events)
    assert scalars["Loss/D/loss"] == [(10, 1.25), (20, 1.0)]
    assert scalars["Eval/high_quality"] == [(20, 0.8999999761581421)]
    assert "Eval/mode_counts" not in scalars and "Eval/kl_from_uniform" not in scalars
    assert tensorboard_image_tags(events) == {"samples"}


def test_curves_draw_losses_and_evaluations_or_nothing() -> None:
    assert curves_png([]) is None
    records = [
        {"step": s, "time": 0.0, "Loss/D/loss": 1.0 / s, "Loss/G/loss": 0.5} for s in range(1, 9)
    ] + [{"step": 8, "time": 0.0, "eval": {"high_quality": 0.5, "modes_covered": 3}}]
    png = curves_png(records)
    assert png is not None
    image = Image.open(io.BytesIO(png))
    # Three panels (losses, high quality, modes) in two columns: two rows of 300 px.
    assert image.size == (1200, 600)
    assert curves_png([{"step": 1, "time": 0.0, "Loss/D/loss": 1.0}]) is not None


def _run(mode_count: int, r1: bool, extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Progress records every 10 steps to 100 and an evaluation every 20: a 2-D mixture's
    figures, or with `mode_count` 1 a line's (W1)."""
    records: list[dict[str, Any]] = []
    for step in range(10, 101, 10):
        records.append({"step": step, "time": 0.0, "Loss/D/loss": 1.2, "Loss/G/loss": 0.8,
                        "Loss/D/reg": 0.01 * step if r1 else 0.0, "Loss/scores/real": 0.3,
                        "Loss/scores/fake": -0.3})  # fmt: skip
        if step % 20 == 0:
            figures = {"modes_covered": min(mode_count, step // 20), "mode_count": mode_count,
                       "high_quality": step / 100, "kl_from_uniform": 1.0 / step,
                       "spread": 1.0, **(extra or {})}  # fmt: skip
            records.append({"step": step, "time": 0.0, "eval": figures})
    return records


def _panels(records: list[dict[str, Any]], warnings: Any = None) -> dict[str, Any]:
    figure = curves_figure(records, warnings)
    return {a.get_title(): a for a in figure.axes if a.get_visible()}


def test_curves_are_named_panels_with_units_goals_and_whole_counts() -> None:
    panels = _panels(_run(8, r1=True))
    try:
        assert list(panels) == [
            "losses", "discriminator scores", "gradient penalty on D (R1 or WGAN-GP)",
            "high-quality samples", "modes covered",
            "mode balance: KL of the mode histogram from uniform",
        ]  # fmt: skip
        assert all(axes.get_ylabel() and axes.get_xlabel() == "step" for axes in panels.values())
        # Readable names, and the penalty is not among D's scores.
        scores = panels["discriminator scores"].get_legend().get_texts()
        assert [t.get_text() for t in scores] == ["on real data", "on generated samples"]
        for axes in panels.values():
            assert not any("Loss/" in line.get_label() for line in axes.lines)
        # Goals: all 8 modes, real data's 98.9% within 3 std, KL under 0.02.
        modes = panels["modes covered"]
        assert [8.0, 8.0] in [list(line.get_ydata()) for line in modes.lines]
        assert any("all 8 modes" in t.get_text() for t in modes.texts)
        high = panels["high-quality samples"]
        assert any(abs(line.get_ydata()[0] - 98.89) < 0.01 for line in high.lines)
        # Counts have whole ticks.
        ticks = [t for t in modes.get_yticks() if 0 <= t <= 8]
        assert ticks and all(float(t).is_integer() for t in ticks)
    finally:
        plt.close("all")


def test_line_data_get_no_mode_panels_and_a_run_without_penalty_no_penalty_panel() -> None:
    panels = _panels(_run(1, r1=False, extra={"w1": 0.2}))
    try:
        assert "modes covered" not in panels
        assert not any("KL" in title for title in panels)
        assert not any("penalty" in title for title in panels)
        w1 = panels["W1 distance to the data"]
        assert w1.get_ylabel() == "W1 (data units)"
        assert [0.05, 0.05] in [list(line.get_ydata()) for line in w1.lines]
    finally:
        plt.close("all")


def test_curves_mark_where_each_warning_fired_and_list_it() -> None:
    records = _run(8, r1=False)
    warnings = [{"step": 40, "message": "mode collapse at step 40"}, {"step": 80, "message": "x"}]
    figure = curves_figure(records, warnings)
    try:
        for axes in (a for a in figure.axes if a.get_visible()):
            (marks,) = [c for c in axes.collections if c.get_linestyle() != [(0.0, None)]]
            assert sorted(segment[0][0] for segment in marks.get_segments()) == [40, 80]
        notes = " ".join(text.get_text() for text in figure.texts)
        assert "1: step 40: mode collapse at step 40" in notes and "2: step 80: x" in notes
    finally:
        plt.close(figure)
    plain = Image.open(io.BytesIO(curves_png(records) or b""))
    marked = Image.open(io.BytesIO(curves_png(records, warnings) or b""))
    assert marked.width == plain.width and marked.height > plain.height


def _margins(png: bytes, width: int) -> tuple[bytes, bytes]:
    """The tick and axis-name strips of a point picture, `width` pixels wide: left of its
    plot area (below the header) and below it."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    left = image.crop((0, 34, width, image.height))
    below = image.crop((0, image.height - width, image.width, image.height))
    return left.tobytes(), below.tobytes()


def test_point_frames_keep_their_axes_and_say_how_many_points_are_off_view() -> None:
    generator = torch.Generator().manual_seed(0)
    reference = torch.randn(200, 2, generator=generator)
    early = 0.05 * torch.randn(300, 2, generator=generator)  # a fresh generator: near 0
    late = torch.cat([torch.randn(290, 2, generator=generator), torch.full((10, 2), 30.0)])
    # The axes are fixed by the real data, whatever the generated points do.
    assert _margins(point_png(early, reference, 256), 30) == _margins(
        point_png(late, reference, 256), 30
    )
    # The header's second line: the count, in red when points lie outside the view.
    assert _has_red(point_png(late, reference, 256)) and not _has_red(point_png(early, reference))
    assert point_view(late, reference).outside == 10 and point_view(early, reference).outside == 0


def _has_red(png: bytes) -> bool:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))[:34].astype(int)
    return bool(((pixels[..., 0] > 150) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)).any())


def test_line_frames_are_densities_over_the_true_one() -> None:
    generator = torch.Generator().manual_seed(0)
    truth = gaussian_mixture_density(np.array([3.0]), 0.5)
    reference = 3 + 0.5 * torch.randn(500, 1, generator=generator)
    generated = 2 + 0.3 * torch.randn(500, 1, generator=generator)
    with_curve = Image.open(io.BytesIO(point_png(generated, reference, 256, density=truth)))
    without = Image.open(io.BytesIO(point_png(generated[:10], reference, 256, density=truth)))

    def colours(image: Image.Image) -> set[tuple[int, int, int]]:
        # The upper part of the plot, above the ticks drawn for each point along the bottom.
        pixels = np.asarray(image.convert("RGB").crop((40, 40, 250, 180))).reshape(-1, 3)
        return {tuple(int(v) for v in row) for row in np.unique(pixels, axis=0)}

    assert TRUE_DENSITY_FILL in colours(with_curve) and TRUE_DENSITY_FILL in colours(without)
    assert GENERATED_COLOUR in colours(with_curve)  # the generated density's curve
    assert GENERATED_COLOUR not in colours(without)  # 10 points: their ticks only


def test_the_reporter_marks_its_warnings_on_the_curves(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    drawn: list[list[dict[str, Any]]] = []

    def curves(records: list[dict[str, Any]], warnings: Any = None) -> bytes:
        drawn.append(list(warnings or []))
        return b"png"

    monkeypatch.setattr(curves_plot, "curves_png", curves)

    class Link:  # the agent's answers: every write done, no earlier attempt
        on_note = None

        def call(self, operation: str, *args: Any, **kwargs: Any) -> tuple[dict[str, Any], bytes]:
            return {"written": True, "found": False}, b""

    ticket = SimpleNamespace(
        job_id="j", attempt=1, stop_file=str(tmp_path / "stop"), log_flush_s=60.0,
        progress_interval_s=60.0, work_folder=str(tmp_path),
    )  # fmt: skip
    reporter = JobReporter(Link(), ticket, rank=0)  # type: ignore[arg-type]
    try:
        reporter.report_evaluation(20, {"high_quality": 0.5}, None)
        reporter.warn("mode collapse at step 20", stop=False)
        reporter.flush()
    finally:
        reporter.close()
    assert drawn[-1] == [{"step": 20, "message": "mode collapse at step 20"}]
