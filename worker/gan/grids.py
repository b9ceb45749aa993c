"""Pictures of samples as PNG bytes: image grids and 2-D scatter plots; and animations of
them as GIF bytes (an interpolation played frame by frame).

Pillow only, drawn with integer pixel coordinates and no metadata, so the same tensors always
give the same bytes (matplotlib embeds versions and varies with fonts and back-ends).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

# Pixels between and around grid cells, as torchvision's make_grid.
GRID_PADDING = 2
GRID_PAD_VALUE = 0
SCATTER_BACKGROUND = (255, 255, 255)
SCATTER_AXES = (225, 225, 225)
# Real data light, generated data strong: the eye should land on what the model made.
REFERENCE_COLOUR = (190, 190, 190)
GENERATED_COLOUR = (31, 119, 180)
# Dot radius in pixels: visible at 512 px, small enough that 0.01-std modes stay distinct.
DOT_RADIUS = 2
# Room around the outermost reference point when the plot widens to hold them all.
REFERENCE_MARGIN = 1.1
# A fixed zlib level: the PNG encoder's output depends on it.
PNG_COMPRESS_LEVEL = 6
# Animation frames are enlarged (whole pixels, no smoothing) to at least this side: a 28 px
# digit is a speck in an image viewer.
MIN_FRAME_SIDE = 112
# 10 frames a second plays a 64-step path in about 6 s; the last frame stays a little longer.
FRAME_MS = 100
LAST_FRAME_MS = 1000


def image_grid_png(images: Tensor, columns: int | None = None) -> bytes:
    """Images [N, C, H, W] in [-1, 1] (C = 1 or 3), row by row in a square-ish grid."""
    count, channels, height, width = images.shape
    if channels not in (1, 3):
        raise ValueError(f"image grids need 1 or 3 channels, got {channels}")
    columns = columns or max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / columns))
    pixels = _to_uint8(images).permute(0, 2, 3, 1).numpy()
    grid_height = rows * (height + GRID_PADDING) + GRID_PADDING
    grid_width = columns * (width + GRID_PADDING) + GRID_PADDING
    canvas = np.full((grid_height, grid_width, channels), GRID_PAD_VALUE, dtype=np.uint8)
    for index, image in enumerate(pixels):
        row, column = divmod(index, columns)
        top = GRID_PADDING + row * (height + GRID_PADDING)
        left = GRID_PADDING + column * (width + GRID_PADDING)
        canvas[top : top + height, left : left + width] = image
    return _png(Image.fromarray(canvas[..., 0] if channels == 1 else canvas))


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


def scatter_png(
    points: Tensor, reference: Tensor | None = None, size: int = 512, extent: float = 1.5
) -> bytes:
    """Generated points [N, 2] over optional reference (real) points, in [-extent, extent]²,
    widened to hold every reference point (grid25 spans ±4). 1-D points [N, 1] lie on the
    x axis."""
    points = _in_plane(points)
    if reference is not None:
        reference = _in_plane(reference)
        if len(reference):
            extent = max(extent, float(reference.abs().max()) * REFERENCE_MARGIN)
    image = Image.new("RGB", (size, size), SCATTER_BACKGROUND)
    draw = ImageDraw.Draw(image)
    middle = _to_pixels(torch.zeros(1, 2), size, extent)[0]
    draw.line([(0, middle[1]), (size - 1, middle[1])], fill=SCATTER_AXES)
    draw.line([(middle[0], 0), (middle[0], size - 1)], fill=SCATTER_AXES)
    for layer, colour in ((reference, REFERENCE_COLOUR), (points, GENERATED_COLOUR)):
        if layer is None:
            continue
        for x, y in _to_pixels(layer, size, extent):
            box = (x - DOT_RADIUS, y - DOT_RADIUS, x + DOT_RADIUS, y + DOT_RADIUS)
            draw.ellipse(box, fill=colour)
    return _png(image)


def _in_plane(points: Tensor) -> Tensor:
    """Points [N, 2] as they are; 1-D points [N, 1] as (x, 0)."""
    if points.shape[1] == 1:
        return torch.cat([points, torch.zeros_like(points)], dim=1)
    return points


def _to_uint8(images: Tensor) -> Tensor:
    scaled = (images.detach().to("cpu", torch.float32).clamp(-1, 1) + 1) * 127.5
    return scaled.round().to(torch.uint8)


def _to_pixels(points: Tensor, size: int, extent: float) -> list[tuple[int, int]]:
    """Plane coordinates to pixel centres, y up; NaN points are dropped."""
    xy = points.detach().to("cpu", torch.float64).numpy()
    xy = xy[np.isfinite(xy).all(axis=1)]
    scale = (size - 1) / (2 * extent)
    columns = np.rint((xy[:, 0] + extent) * scale).clip(-size, 2 * size).astype(np.int64)
    rows = np.rint((extent - xy[:, 1]) * scale).clip(-size, 2 * size).astype(np.int64)
    return list(zip(columns.tolist(), rows.tolist(), strict=True))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()
