"""Point pictures as PNG bytes: a 2-D scatter of generated points over the real ones, or 1-D
densities (the true one, the generated points' estimate and a tick per point), with axes,
ticks and a count of the points outside the view (counted, never dropped silently).

Pillow only, like worker/gan/grids.py, so the same points always give the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from worker.gan.grids import label_font, png_bytes

Colour = tuple[int, int, int]

SCATTER_BACKGROUND = (255, 255, 255)
# Real data light, generated data strong: the eye should land on what the model made.
REFERENCE_COLOUR = (190, 190, 190)
GENERATED_COLOUR = (31, 119, 180)
# Dot radius in pixels: visible at 512 px, small enough that 0.01-std modes stay distinct.
DOT_RADIUS = 2
# Room around the outermost reference point when the plot widens to hold them all.
REFERENCE_MARGIN = 1.1


def scatter_png(
    points: Tensor,
    reference: Tensor | None = None,
    size: int = 512,
    extent: float = 1.5,
    *,
    density: Callable[[np.ndarray], np.ndarray] | None = None,
    curve: bool = True,
) -> bytes:
    """A picture of generated points with axes, ticks and a header saying what is drawn and
    how many points lie outside the view (counted, never dropped silently).

    2-D points [N, 2]: a scatter over optional reference (real) points, in [-extent, extent]²
    widened to hold every reference point (grid25 spans ±4), so the view is fixed by the data,
    never by the generated points: every snapshot of a run shares its axes. 1-D points [N, 1]:
    densities over x: the true density where it is known (`density`, a function of x) or else
    a kernel density estimate of the reference points, the generated points' estimate (when
    `curve` and there are at least MIN_CURVE_POINTS) and one tick per generated point along
    the bottom; x spans the reference points and 0, y the true density's peak with room."""
    if points.shape[1] == 1:
        return _line_picture(points, reference, size, extent, density, curve)
    return _plane_picture(points, reference, size, extent)


def gaussian_mixture_density(centres: np.ndarray, std: float) -> Callable[[np.ndarray], np.ndarray]:
    """The density over x of equal-weight 1-D Gaussians of one std at `centres`."""
    means = np.asarray(centres, dtype=np.float64).reshape(-1)

    def density(x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64)[:, None] - means[None, :]) / std
        return np.exp(-0.5 * z**2).mean(axis=1) / (std * math.sqrt(2 * math.pi))

    return density


# A point picture's text size at 512 px (scaled with the picture, never below the minimum);
# the margins around the plot are laid out from it: the header's two lines above, tick labels
# and the axis names below and to the left.
FONT_PX = 12
MIN_FONT_PX = 9
TEXT_COLOUR = (40, 40, 40)
FRAME_COLOUR = (110, 110, 110)
TICK_GRID_COLOUR = (236, 236, 236)
OFF_VIEW_COLOUR = (200, 30, 30)
TRUE_DENSITY_FILL = (225, 225, 225)
TRUE_DENSITY_LINE = (100, 100, 100)
# An axis's ticks: the round step nearest above its range over this.
TICKS = 6
# Fewer generated 1-D points than this get their ticks only, no density estimate.
MIN_CURVE_POINTS = 50
# A 1-D view reaches this fraction of the reference points' range (with 0) past either end.
LINE_VIEW_PAD = 0.2
# The y view of a 1-D picture: the true (or real data's) density's peak times this.
PEAK_ROOM = 1.3
# A density estimate's bandwidth is at least this fraction of the view: a collapsed generator
# (every point equal) draws a narrow spike, not a division by zero.
MIN_BANDWIDTH = 1 / 150


@dataclass(frozen=True)
class PointView:
    """What a point picture shows: its x range, its y range (2-D; None for 1-D, whose y is
    a density), and how many generated points lie outside it (or are not finite)."""

    x: tuple[float, float]
    y: tuple[float, float] | None
    outside: int


def point_view(points: Tensor, reference: Tensor | None = None, extent: float = 1.5) -> PointView:
    """The view of a point picture, fixed by the reference points alone (never the generated
    ones), so every snapshot of a run shares its axes: for 2-D [-extent, extent]², widened to
    hold every reference point; for 1-D the reference points' range and 0, with a fifth of
    it either side ([-extent, extent] without reference points)."""
    generated = _numpy(points)
    real = _numpy(reference) if reference is not None and len(reference) else None
    if generated.shape[1] == 1:
        if real is not None:
            low, high = min(float(real.min()), 0.0), max(float(real.max()), 0.0)
            pad = LINE_VIEW_PAD * (high - low or 1.0)
            low, high = low - pad, high + pad
        else:
            low, high = -extent, extent
        with np.errstate(invalid="ignore"):
            inside = (generated[:, 0] >= low) & (generated[:, 0] <= high)
        return PointView((low, high), None, len(generated) - int(inside.sum()))
    if real is not None:
        extent = max(extent, float(np.abs(real).max()) * REFERENCE_MARGIN)
    with np.errstate(invalid="ignore"):
        inside = (np.abs(generated) <= extent).all(axis=1)
    return PointView((-extent, extent), (-extent, extent), len(generated) - int(inside.sum()))


def _plane_picture(points: Tensor, reference: Tensor | None, size: int, extent: float) -> bytes:
    generated = _numpy(points)
    view = point_view(points, reference, extent)
    assert view.y is not None
    canvas = _Canvas(size, view.x, view.y, square=True)
    canvas.axes("x", "y")
    radius = max(1, round(DOT_RADIUS * size / 512))
    legend = [(GENERATED_COLOUR, f"generated ({len(points):,})")]
    if reference is not None:
        real = _numpy(reference)
        canvas.dots(real[canvas.inside(real)], REFERENCE_COLOUR, radius)
        legend.append((REFERENCE_COLOUR, f"real data ({len(reference):,} samples)"))
    canvas.dots(generated[canvas.inside(generated)], GENERATED_COLOUR, radius)
    canvas.header(legend, _off_view(view.outside, len(points)))
    return png_bytes(canvas.image)


def _line_picture(
    points: Tensor,
    reference: Tensor | None,
    size: int,
    extent: float,
    density: Callable[[np.ndarray], np.ndarray] | None,
    curve: bool,
) -> bytes:
    generated = _numpy(points)[:, 0]
    generated = generated[np.isfinite(generated)]
    real = _numpy(reference)[:, 0] if reference is not None and len(reference) else None
    view = point_view(points, reference, extent)
    low, high = view.x
    grid = np.linspace(low, high, max(size, 2))
    truth = density(grid) if density is not None else None
    if truth is None and real is not None:
        truth = _kde(real, grid, high - low)
    estimate = None
    if curve and len(generated) >= MIN_CURVE_POINTS:
        estimate = _kde(generated, grid, high - low)
    peak = truth.max() if truth is not None else estimate.max() if estimate is not None else 0.0
    top = PEAK_ROOM * float(peak) if peak > 0 else 1.0  # a density of 0 all over: any scale
    canvas = _Canvas(size, (low, high), (0.0, top), square=False)
    canvas.axes("x", "density")
    legend: list[tuple[Colour, str]] = []
    if truth is not None:
        canvas.area(grid, truth, TRUE_DENSITY_FILL, TRUE_DENSITY_LINE)
        real_count = 0 if real is None else len(real)
        name = "true density" if density is not None else f"real data (density of {real_count:,})"
        legend.append((TRUE_DENSITY_LINE, name))
    canvas.rug(generated[(generated >= low) & (generated <= high)], GENERATED_COLOUR)
    notes = [_off_view(view.outside, len(points))]
    if estimate is not None:
        canvas.curve(grid, estimate, GENERATED_COLOUR)
        legend.append((GENERATED_COLOUR, f"generated (density of {len(points):,}; ticks: points)"))
        if estimate.max() > canvas.y_view[1]:
            notes.append((OFF_VIEW_COLOUR, f"generated peak {estimate.max():.3g} above the view"))
    else:
        legend.append((GENERATED_COLOUR, f"generated ({len(points):,}, a tick each)"))
    canvas.header(legend, *notes)
    return png_bytes(canvas.image)


def _off_view(outside: int, total: int) -> tuple[Colour, str]:
    if outside:
        return OFF_VIEW_COLOUR, f"{outside:,} of {total:,} generated points outside the view"
    return TEXT_COLOUR, f"all {total:,} generated points in the view"


def _kde(values: np.ndarray, grid: np.ndarray, span: float) -> np.ndarray:
    """A Gaussian kernel density estimate of `values` over `grid` (Silverman's bandwidth, at
    least MIN_BANDWIDTH of the view)."""
    spread = float(values.std())
    quartiles = np.percentile(values, [25, 75])
    scale = min(spread, float(quartiles[1] - quartiles[0]) / 1.34) or spread
    bandwidth = max(0.9 * scale * len(values) ** -0.2, MIN_BANDWIDTH * span)
    total = np.zeros_like(grid)
    for chunk in np.array_split(values, max(1, len(values) // 512)):
        total += np.exp(-0.5 * ((grid[:, None] - chunk[None, :]) / bandwidth) ** 2).sum(axis=1)
    return total / (len(values) * bandwidth * math.sqrt(2 * math.pi))


def _numpy(points: Tensor) -> np.ndarray:
    """Points as float64 numpy [N, d]; rows that are not finite are kept (they count as
    outside any view)."""
    return points.detach().to("cpu", torch.float64).numpy()


def _scaled(size: int, pixels: float) -> int:
    return round(pixels * size / 512)


class _Canvas:
    """A plot area inside fixed margins, data coordinates to pixels (y up), with its frame,
    ticks, axis names and a two-line header."""

    def __init__(
        self, size: int, x_view: tuple[float, float], y_view: tuple[float, float], square: bool
    ) -> None:
        self.size, self.x_view, self.y_view = size, x_view, y_view
        self.image = Image.new("RGB", (size, size), SCATTER_BACKGROUND)
        self.draw = ImageDraw.Draw(self.image)
        self.font = label_font(max(MIN_FONT_PX, _scaled(size, FONT_PX)))
        self.line = self._measure("Agy(0.25)")[1] + max(2, _scaled(size, 4))  # a line of text
        self.gap, self.tick = max(2, _scaled(size, 4)), max(2, _scaled(size, 4))
        label_width = self._measure("-0.25")[0]
        left = self.gap + self.line + label_width + self.tick + self.gap
        right = size - max(self.gap, self.line // 2 + self._measure("0.25")[0] // 2)
        top = 2 * self.line + 2 * self.gap
        bottom = size - (2 * self.line + self.tick + self.gap)
        if square:  # equal units on both axes: the plot area is a square, centred
            side = min(right - left, bottom - top)
            left += (right - left - side) // 2
            right, bottom = left + side, top + side
        self.box = (left, top, right, bottom)

    def pixels(self, xy: np.ndarray) -> np.ndarray:
        """Points [N, 2] in data coordinates to integer pixel centres [N, 2]."""
        left, top, right, bottom = self.box
        (x0, x1), (y0, y1) = self.x_view, self.y_view
        columns = left + (xy[:, 0] - x0) * (right - left) / (x1 - x0)
        rows = bottom - (xy[:, 1] - y0) * (bottom - top) / (y1 - y0)
        return np.rint(np.stack([columns, rows], axis=1)).astype(np.int64)

    def inside(self, xy: np.ndarray) -> np.ndarray:
        """Which points [N, 2] lie in the view (a point that is not finite does not)."""
        (x0, x1), (y0, y1) = self.x_view, self.y_view
        with np.errstate(invalid="ignore"):
            return (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)

    def axes(self, x_name: str, y_name: str) -> None:
        left, top, right, bottom = self.box
        tick = self.tick
        for value in _nice_ticks(*self.x_view):
            column = int(self.pixels(np.array([[value, self.y_view[0]]]))[0, 0])
            self.draw.line([(column, top), (column, bottom)], fill=TICK_GRID_COLOUR)
            self.draw.line([(column, bottom), (column, bottom + tick)], fill=FRAME_COLOUR)
            self._text((column, bottom + tick + 1), _tick_label(value), "mt")
        for value in _nice_ticks(*self.y_view):
            row = int(self.pixels(np.array([[self.x_view[0], value]]))[0, 1])
            self.draw.line([(left, row), (right, row)], fill=TICK_GRID_COLOUR)
            self.draw.line([(left - tick, row), (left, row)], fill=FRAME_COLOUR)
            self._text((left - tick - 2, row), _tick_label(value), "rm")
        self.draw.rectangle(self.box, outline=FRAME_COLOUR)
        self._text(((left + right) // 2, self.size - 2), x_name, "mb")
        self._vertical_text((self.gap, (top + bottom) // 2), y_name)

    def dots(self, xy: np.ndarray, colour: Colour, radius: int) -> None:
        for x, y in self.pixels(xy).tolist():
            self.draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)

    def area(self, xs: np.ndarray, ys: np.ndarray, fill: Colour, line: Colour) -> None:
        """The region under a curve, filled, with the curve on top (clipped to the view)."""
        top = self.y_view[1]
        edge = self.pixels(np.stack([xs, np.minimum(ys, top)], axis=1)).tolist()
        bottom = self.box[3]
        self.draw.polygon([(edge[0][0], bottom), *map(tuple, edge), (edge[-1][0], bottom)],
                          fill=fill)  # fmt: skip
        self.draw.line([tuple(p) for p in edge], fill=line, width=max(1, _scaled(self.size, 2)))

    def curve(self, xs: np.ndarray, ys: np.ndarray, colour: Colour) -> None:
        """A curve clipped at the top of the view."""
        edge = self.pixels(np.stack([xs, np.minimum(ys, self.y_view[1])], axis=1))
        self.draw.line([tuple(p) for p in edge.tolist()], fill=colour,
                       width=max(1, _scaled(self.size, 2)))  # fmt: skip

    def rug(self, values: np.ndarray, colour: Colour) -> None:
        """One short tick per value along the bottom of the plot area."""
        bottom = self.box[3] - 1
        height = max(3, _scaled(self.size, 10))
        columns = self.pixels(np.stack([values, np.zeros_like(values)], axis=1))[:, 0]
        for column in np.unique(columns).tolist():
            self.draw.line([(column, bottom - height), (column, bottom)], fill=colour)

    def header(self, legend: list[tuple[Colour, str]], *notes: tuple[Colour, str]) -> None:
        """The legend (a swatch and a name each) on the first line above the plot, the notes
        on the second."""
        line, gap = self.line, self.gap
        x, y = min(self.box[0], self.line + gap), gap
        swatch = max(4, line // 2)
        for colour, name in legend:
            middle = y + (line - gap) // 2
            self.draw.rectangle((x, middle - swatch // 2, x + swatch, middle + swatch // 2),
                                fill=colour)  # fmt: skip
            x = self._text((x + swatch + gap, y), name, "lt") + line
        x, y = min(self.box[0], self.line + gap), y + line
        for colour, note in notes:
            x = self._text((x, y), note, "lt", colour) + line

    def _measure(self, text: str) -> tuple[int, int]:
        left, top, right, bottom = self.draw.textbbox((0, 0), text, font=self.font)
        return int(right - left), int(bottom - top)

    def _text(
        self, xy: tuple[int, int], text: str, anchor: str, colour: Colour = TEXT_COLOUR
    ) -> int:
        """`text` placed by `anchor` (l/m/r across, t/m/b down) at `xy`; its right edge."""
        left, top, right, bottom = self.draw.textbbox((0, 0), text, font=self.font)
        width, height = int(right - left), int(bottom - top)
        x = xy[0] - {"l": 0, "m": width // 2, "r": width}[anchor[0]]
        y = xy[1] - {"t": 0, "m": height // 2, "b": height}[anchor[1]]
        self.draw.text((x - left, y - top), text, font=self.font, fill=colour)
        return x + width

    def _vertical_text(self, xy: tuple[int, int], text: str) -> None:
        left, top, right, bottom = self.draw.textbbox((0, 0), text, font=self.font)
        label = Image.new("RGB", (int(right - left) + 2, int(bottom - top) + 2), SCATTER_BACKGROUND)
        ImageDraw.Draw(label).text((1 - left, 1 - top), text, font=self.font, fill=TEXT_COLOUR)
        turned = label.rotate(90, expand=True)
        self.image.paste(turned, (xy[0], xy[1] - turned.height // 2))


def _nice_ticks(low: float, high: float) -> list[float]:
    """Round values in [low, high], a step apart: the least of 1, 2, 2.5, 5 or 10 times a
    power of ten that is at least (high - low) / TICKS."""
    raw = (high - low) / TICKS
    if not math.isfinite(raw) or raw <= 0:
        return [low]
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if raw <= m * magnitude * 1.0001)
    first = math.ceil(low / step - 1e-9)
    return [k * step for k in range(first, math.floor(high / step + 1e-9) + 1)]


def _tick_label(value: float) -> str:
    text = f"{round(value, 10):g}"
    return "0" if text == "-0" else text
