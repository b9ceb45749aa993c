"""The pictures a run draws of itself: the fixed-noise timeline GIF, TensorBoard event files
and the loss and metric curves (worker/timeline.py, worker/tensorboard_log.py, plots)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageSequence

from tests.helpers import tensorboard_image_tags, tensorboard_scalars
from worker.gan.plots import curves_png
from worker.tensorboard_log import EVAL_PREFIX, TensorBoardLog
from worker.timeline import MAX_FRAMES, Timeline


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
