from __future__ import annotations

import io

import torch
from PIL import Image

from worker.gan.grids import image_grid_png, scatter_png


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


def test_scatter_is_deterministic_and_draws_generated_points_in_colour() -> None:
    points = torch.tensor([[0.5, 0.5], [-1.0, 0.25]])
    reference = torch.tensor([[0.0, -1.0]])
    png = scatter_png(points, reference, size=128)
    assert png == scatter_png(points.clone(), reference.clone(), size=128)
    image = _decode(png).convert("RGB")
    assert image.size == (128, 128)
    pixel = image.getpixel((round((0.5 + 1.5) * 127 / 3), round((1.5 - 0.5) * 127 / 3)))
    assert pixel[2] > pixel[0]  # generated points are blue
    grey = image.getpixel((round(1.5 * 127 / 3), round(2.5 * 127 / 3)))
    assert grey[0] == grey[1] == grey[2] < 255
