from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from worker.gan.grids import MAX_GRID_SIDE, image_grid_png
from worker.gan.point_pictures import (
    GENERATED_COLOUR,
    REFERENCE_COLOUR,
    PointView,
    point_view,
    scatter_png,
)


def _decode(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png))


def test_grid_is_square_ish_with_two_pixel_padding() -> None:
    grid = _decode(image_grid_png(torch.zeros(64, 1, 28, 28)))
    assert grid.size == (8 * 30 + 2, 8 * 30 + 2)
    assert grid.mode == "L"
    five = _decode(image_grid_png(torch.zeros(5, 1, 28, 28)))
    assert five.size == (3 * 30 + 2, 2 * 30 + 2)


def test_grid_honours_columns_and_colour_images() -> None:
    grid = _decode(image_grid_png(torch.zeros(6, 3, 8, 8), columns=6))
    assert grid.size == (6 * 10 + 2, 12)
    assert grid.mode == "RGB"


def test_grid_maps_minus_one_to_black_and_one_to_white() -> None:
    images = torch.stack([-torch.ones(1, 4, 4), torch.ones(1, 4, 4)])
    grid = _decode(image_grid_png(images, columns=2))
    assert grid.getpixel((2, 2)) == 0
    assert grid.getpixel((8, 2)) == 255


def test_the_same_images_give_the_same_bytes() -> None:
    images = torch.rand(9, 1, 28, 28) * 2 - 1
    assert image_grid_png(images) == image_grid_png(images.clone())


def test_a_256px_grid_of_64_is_drawn_whole_and_a_256px_strip_as_bounded_thumbnails() -> None:
    whole = _decode(image_grid_png(torch.zeros(64, 3, 256, 256)))
    assert whole.size == (8 * 258 + 2,) * 2  # under MAX_GRID_SIDE: cells stay full size
    halves = torch.cat([-torch.ones(64, 1, 256, 128), torch.ones(64, 1, 256, 128)], dim=3)
    strip = _decode(image_grid_png(halves, columns=64))  # an interpolation of 64 images
    cell = (MAX_GRID_SIDE - 2) // 64 - 2
    assert strip.size == (64 * (cell + 2) + 2, cell + 4) and strip.width <= MAX_GRID_SIDE
    # Area-averaged: each thumbnail keeps its black left half and white right half.
    assert strip.getpixel((2 + 5, 10)) == 0 and strip.getpixel((2 + cell - 5, 10)) == 255


def test_scatter_is_deterministic_and_draws_generated_points_in_colour() -> None:
    points = torch.tensor([[0.5, 0.5], [-1.0, 0.25]])
    reference = torch.tensor([[0.0, -1.0]])
    png = scatter_png(points, reference, size=128)
    assert png == scatter_png(points.clone(), reference.clone(), size=128)
    image = _decode(png).convert("RGB")
    assert image.size == (128, 128)
    colours = {tuple(int(v) for v in row) for row in np.asarray(image).reshape(-1, 3)}
    assert GENERATED_COLOUR in colours and REFERENCE_COLOUR in colours


def test_the_view_is_fixed_by_the_real_points_and_counts_what_falls_outside() -> None:
    reference = torch.tensor([[2.0, -1.0]])
    inside = torch.tensor([[0.0, 0.0], [-2.1, 2.1]])
    view = point_view(inside, reference)
    assert view.x == view.y == (-2.2, 2.2) and view.outside == 0  # widened to hold the data
    outside = torch.tensor([[0.0, 0.0], [3.0, 0.0], [float("nan"), 0.0], [0.0, -2.3]])
    assert point_view(outside, reference) == PointView(view.x, view.y, 3)
    assert point_view(outside).x == (-1.5, 1.5)  # no real points: the default extent
    # A line's view spans the real points and 0, a fifth of that past either end.
    line = point_view(torch.tensor([[1.0], [9.0]]), torch.tensor([[2.0], [4.0]]))
    assert line.x == pytest.approx((-0.8, 4.8)) and line.y is None and line.outside == 1
