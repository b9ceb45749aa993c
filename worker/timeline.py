"""The fixed-noise timeline: every sample grid of a run, one frame per snapshot, as an
animated GIF (`timeline.gif`) a researcher can play or scrub through.

The grids are drawn on the same fixed latents all run long, so the frames show one set of
images growing out of noise (or a collapse setting in). For point data each frame is the run's
point picture (worker/gan/point_pictures.py `scatter_png`): axes fixed by the data for the
whole run, with ticks, a count of the points outside the view, and for 1-D data the densities.
Each frame carries its step in a strip above the picture. A resumed attempt starts from the
previous attempt's GIF, so the timeline stays one history.
"""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageOps, ImageSequence

from worker.gan.grids import animated_gif, label_font

# Past this many frames every other old frame is dropped: a 100k-step run sampled every 500
# steps stays a GIF of a few MB that plays in about 12 s.
MAX_FRAMES = 120
# Longest side of a frame: a 64 px run's 8x8 grid (530 px) is kept whole; a 128 or 256 px
# run's (1,042 or 2,066 px) is area-averaged down, so 120 frames stay about 150 MB in memory
# and a GIF that opens. The snapshots themselves stay full size.
MAX_FRAME_SIDE = 640
LABEL_HEIGHT = 18
LABEL_FONT_PX = 13
LABEL_BACKGROUND = (255, 255, 255)
LABEL_COLOUR = (0, 0, 0)


class Timeline:
    """Frames of (step, image); `gif()` encodes them all."""

    def __init__(self, previous: bytes | None = None) -> None:
        self.frames: list[tuple[int, Image.Image]] = []
        if previous:
            self.frames = _frames_of(previous)

    def add(self, step: int, png: bytes) -> None:
        """One sample grid; a step already in the timeline (a resumed attempt redrawing it)
        replaces its frame."""
        image = Image.open(io.BytesIO(png)).convert("RGB")
        if max(image.size) > MAX_FRAME_SIDE:
            image = ImageOps.contain(image, (MAX_FRAME_SIDE,) * 2, Image.Resampling.BOX)
        frames = [(s, f) for s, f in self.frames if s != step]
        frames.append((step, _labelled(image, step)))
        frames.sort(key=lambda frame: frame[0])
        if len(frames) > MAX_FRAMES:
            # Keep the first and last; thin the rest evenly.
            frames = frames[:-1:2] + frames[-1:]
        self.frames = frames  # one assignment: a GIF drawn meanwhile sees old or new, whole

    def gif(self) -> bytes | None:
        """The animated GIF of every frame (None before the first); the step of each frame is
        kept in its GIF comment so a later attempt can read the timeline back. Drawn from the
        frames as they are now (a checkpoint's flush draws it while training adds frames)."""
        frames = self.frames
        if not frames:
            return None
        size = max(f.size[0] for _, f in frames), max(f.size[1] for _, f in frames)
        images = [_padded(f, size) for _, f in frames]
        return animated_gif(images, comment=",".join(str(s) for s, _ in frames).encode())


def _labelled(image: Image.Image, step: int) -> Image.Image:
    framed = Image.new("RGB", (image.width, image.height + LABEL_HEIGHT), LABEL_BACKGROUND)
    framed.paste(image, (0, LABEL_HEIGHT))
    ImageDraw.Draw(framed).text(
        (4, 2), f"step {step:,}", fill=LABEL_COLOUR, font=label_font(LABEL_FONT_PX)
    )
    return framed


def _padded(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image
    canvas = Image.new("RGB", size, LABEL_BACKGROUND)
    canvas.paste(image, (0, 0))
    return canvas


def _frames_of(gif: bytes) -> list[tuple[int, Image.Image]]:
    """The frames of a timeline GIF this module wrote, with their steps (from its comment);
    an unreadable GIF gives no frames rather than failing the run."""
    try:
        image = Image.open(io.BytesIO(gif))
        steps = [int(s) for s in image.info.get("comment", b"").decode().split(",") if s]
        frames = [frame.convert("RGB") for frame in ImageSequence.Iterator(image)]
    except (OSError, ValueError):
        return []
    if len(steps) != len(frames):
        return []
    return list(zip(steps, frames, strict=True))
