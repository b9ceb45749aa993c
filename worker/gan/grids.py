"""Pictures of images as PNG bytes: grids of samples (area-averaged thumbnails past
MAX_GRID_SIDE), and animations of them as GIF bytes (an interpolation played frame by frame).
Point pictures (scatters, 1-D densities) are in worker/gan/point_pictures.py.

Pillow only, drawn with integer pixel coordinates and no metadata, so the same tensors always
give the same bytes (matplotlib embeds versions and varies with fonts and back-ends).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from functools import cache

import numpy as np
import torch
from PIL import Image, ImageFont
from torch import Tensor

from worker.gan.thumbnails import scaled_down

# Pixels between and around grid cells, as torchvision's make_grid.
GRID_PADDING = 2
GRID_PAD_VALUE = 0
# A fixed zlib level: the PNG encoder's output depends on it.
PNG_COMPRESS_LEVEL = 6
# Animation frames are enlarged (whole pixels, no smoothing) to at least this side: a 28 px
# digit is a speck in an image viewer.
MIN_FRAME_SIDE = 112
# The longest side a grid is drawn at: past it, cells become area-averaged thumbnails. At
# 28-64 px every grid a job may ask for fits whole (10,000 images of 64 px are 6,602 px a
# side); it bounds a 256 px interpolation strip (64 cells, 16,500 px wide whole) and keeps a
# canvas under 8192² x 3 bytes (200 MB).
MAX_GRID_SIDE = 8192
# 10 frames a second plays a 64-step path in about 6 s; the last frame stays a little longer.
FRAME_MS = 100
LAST_FRAME_MS = 1000


def image_grid_png(images: Tensor, columns: int | None = None) -> bytes:
    """Images [N, C, H, W] in [-1, 1] (C = 1 or 3), row by row in a square-ish grid.

    Cells are the images' own size (so an inversion can read them back) unless that makes
    the grid longer than MAX_GRID_SIDE: then they are the largest area-averaged thumbnails
    that fit.
    """
    count, channels, height, width = images.shape
    if channels not in (1, 3):
        raise ValueError(f"image grids need 1 or 3 channels, got {channels}")
    columns = columns or max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / columns))
    fits = (MAX_GRID_SIDE - GRID_PADDING) // max(rows, columns) - GRID_PADDING
    images = scaled_down(images.detach().float(), max(1, fits))
    height, width = images.shape[2:]
    pixels = _to_uint8(images).permute(0, 2, 3, 1).numpy()
    grid_height = rows * (height + GRID_PADDING) + GRID_PADDING
    grid_width = columns * (width + GRID_PADDING) + GRID_PADDING
    canvas = np.full((grid_height, grid_width, channels), GRID_PAD_VALUE, dtype=np.uint8)
    for index, image in enumerate(pixels):
        row, column = divmod(index, columns)
        top = GRID_PADDING + row * (height + GRID_PADDING)
        left = GRID_PADDING + column * (width + GRID_PADDING)
        canvas[top : top + height, left : left + width] = image
    return png_bytes(Image.fromarray(canvas[..., 0] if channels == 1 else canvas))


def image_frames(images: Tensor) -> list[Image.Image]:
    """Images [N, C, H, W] in [-1, 1] as pictures, enlarged by a whole factor to at least
    `MIN_FRAME_SIDE` pixels a side."""
    _count, channels, height, width = images.shape
    if channels not in (1, 3):
        raise ValueError(f"image frames need 1 or 3 channels, got {channels}")
    factor = max(1, math.ceil(MIN_FRAME_SIDE / min(height, width)))
    pixels = _to_uint8(images).permute(0, 2, 3, 1).numpy()
    frames = [Image.fromarray(p[..., 0] if channels == 1 else p) for p in pixels]
    size = (width * factor, height * factor)
    return [frame.resize(size, Image.Resampling.NEAREST) for frame in frames]


# Rows of the progress strip under each frame of a path (`with_progress`).
PROGRESS_ROWS = 4


def with_progress(frames: Sequence[Image.Image]) -> list[Image.Image]:
    """Each frame with a strip under it filled to its place on the path (k of N). A viewer
    sees where the path is; and no two frames are alike, which matters because Pillow writes
    consecutive identical frames as one (an interpolation of 8 images shown as 6 frames)."""
    marked = []
    for index, frame in enumerate(frames):
        grey = frame.mode == "L"
        frame = frame if grey else frame.convert("RGB")
        width, height = frame.size
        # Grey digits lie on black: a white bar on black; colour plots on white: blue on grey.
        background, ink = (0, 255) if grey else ((225, 225, 225), (31, 119, 180))
        canvas = Image.new(frame.mode, (width, height + PROGRESS_ROWS), background)
        canvas.paste(frame, (0, 0))
        filled = max(1, round(width * (index + 1) / len(frames)))
        canvas.paste(ink, (0, height, filled, height + PROGRESS_ROWS))
        marked.append(canvas)
    return marked


def animated_gif(frames: Sequence[Image.Image], comment: bytes = b"") -> bytes:
    """The frames as one looping GIF, `FRAME_MS` each and `LAST_FRAME_MS` for the last;
    `comment` is kept in the file (the timeline stores its frames' steps there)."""
    if not frames:
        raise ValueError("an animation needs at least one frame")
    durations = [FRAME_MS] * (len(frames) - 1) + [LAST_FRAME_MS]
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=list(frames[1:]),
        duration=durations,
        loop=0,
        **({"comment": comment} if comment else {}),
    )
    return buffer.getvalue()


@cache
def label_font(pixels: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's own font at `pixels` (its bitmap font where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=pixels)
    except (TypeError, OSError):  # Pillow before 10.1, or no FreeType
        return ImageFont.load_default()


def _to_uint8(images: Tensor) -> Tensor:
    scaled = (images.detach().to("cpu", torch.float32).clamp(-1, 1) + 1) * 127.5
    return scaled.round().to(torch.uint8)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()
