"""Sampling a conditional generator: a class per image, one class held through an
interpolation, and a class grid whose rows are classes and whose columns keep their latent."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from gan_testing import CELL, mnist_spec, trained_checkpoint
from PIL import Image

from shared.specs import SampleSpec
from tests.data_builders import write_npz
from worker.gan.errors import ClassesError
from worker.gan.export import export_generator
from worker.gan.sample import load_generator, render_png, sample_for_spec

CPU = torch.device("cpu")


def _noise_checkpoint(folder: Path, conditional: bool) -> dict[str, Any]:
    """A dcgan trained 2 steps on 20 labelled noise images: an .npz, so no digit classifier
    is trained or run (seconds saved; what is drawn is all these tests look at)."""
    pixels = np.random.default_rng(0).integers(0, 256, size=(20, 28, 28), dtype=np.uint8)
    path = write_npz(folder / "d.npz", data=pixels, labels=np.arange(20) % 10)
    model = {"family": "dcgan", "width": 4, "conditional": conditional}
    data = {"source": "npz", "path": str(path), "shape": [1, 28, 28]}
    return trained_checkpoint(
        mnist_spec(model=model, data=data, train={"steps": 2, "batch_size": 8})
    )


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _noise_checkpoint(tmp_path_factory.mktemp("npz"), conditional=True)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _noise_checkpoint(tmp_path_factory.mktemp("plain"), conditional=False)


def _spec(**fields: Any) -> SampleSpec:
    return SampleSpec.model_validate({"job_id": "j", **fields})


def _cells(png: bytes) -> np.ndarray:
    """The grid's images, row by row: [rows, columns, 28, 28]."""
    grid = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    rows, columns = (grid.shape[0] - 2) // CELL, (grid.shape[1] - 2) // CELL
    return np.stack(
        [
            [
                grid[2 + r * CELL : r * CELL + CELL, 2 + c * CELL : c * CELL + CELL]
                for c in range(columns)
            ]
            for r in range(rows)
        ]
    )


def test_a_class_grid_has_a_row_per_class_each_drawing_every_seed(digits: dict[str, Any]) -> None:
    result = sample_for_spec(digits, _spec(seeds=[4, 5, 6], class_grid=[2, 7]), CPU)
    assert Image.open(io.BytesIO(result.png)).size == (3 * CELL + 2, 2 * CELL + 2)
    assert result.latents.shape == (6, 8)
    assert np.array_equal(result.latents[:3], result.latents[3:])  # each row the same seeds
    # Each row is its class: the same as asking for that class image by image.
    row_of_sevens = sample_for_spec(digits, _spec(seeds=[4, 5, 6], class_grid=[7]), CPU)
    assert np.array_equal(_cells(result.png)[1], _cells(row_of_sevens.png)[0])
    assert not np.array_equal(_cells(result.png)[0], _cells(result.png)[1])


def test_one_class_per_image_draws_what_g_draws_for_it(digits: dict[str, Any]) -> None:
    result = sample_for_spec(digits, _spec(seeds=[1, 2], classes=[3, 9]), CPU)
    generator, spec = load_generator(digits, CPU)
    with torch.no_grad():
        drawn = generator(torch.from_numpy(result.latents), torch.tensor([3, 9]))
    assert result.png == render_png(spec, drawn)
    in_turn = sample_for_spec(digits, _spec(seeds=[1, 2]), CPU)  # classes 0 and 1
    assert in_turn.png != result.png


def test_an_interpolation_can_hold_its_class(digits: dict[str, Any]) -> None:
    path = {"from_seed": 1, "to_seed": 2, "steps": 4}
    held = sample_for_spec(digits, _spec(interpolation=path, classes=5), CPU)
    other = sample_for_spec(digits, _spec(interpolation=path, classes=6), CPU)
    assert held.gif is not None
    assert np.array_equal(held.latents, other.latents) and held.png != other.png


def test_classes_the_model_lacks_or_an_unconditional_model_are_refused(
    digits: dict[str, Any], plain: dict[str, Any]
) -> None:
    with pytest.raises(ClassesError, match=r"^spec\.class_grid: class 10 does not exist"):
        sample_for_spec(digits, _spec(seeds=[1], class_grid=[0, 10]), CPU)
    with pytest.raises(
        ClassesError, match=r"^spec\.classes: the model of job j is not conditional"
    ):
        sample_for_spec(plain, _spec(seeds=[1], classes=1), CPU)


def test_an_exported_conditional_generator_takes_latents_and_classes(
    digits: dict[str, Any],
) -> None:
    exported = export_generator(digits, "j")
    assert exported.torchscript is not None
    with warnings.catch_warnings():  # TorchScript is deprecated, still what the export writes
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(io.BytesIO(exported.torchscript))
    generator, _ = load_generator(digits, CPU)
    z, classes = torch.randn(3, 8), torch.tensor([9, 0, 4])
    with torch.no_grad():
        assert torch.allclose(module(z, classes), generator(z, classes), atol=1e-6)
    card = json.loads(exported.card)
    assert card["input"].endswith("and int64 classes [n] in 0-9 (G(z, y))")
    assert card["model"]["classes"] == 10


def test_one_hot_class_weights_draw_exactly_what_class_ids_draw(digits: dict[str, Any]) -> None:
    generator, _ = load_generator(digits, CPU)
    z, ids = torch.randn(3, 8), torch.tensor([2, 7, 7])
    weights = torch.eye(10)[ids]
    with torch.no_grad():
        assert torch.equal(generator(z, weights), generator(z, ids))
        halfway = generator(z[:1], (torch.eye(10)[2] + torch.eye(10)[7])[None] / 2)
    assert not torch.equal(halfway, generator(z[:1], ids[:1]))


def test_an_interpolation_between_classes_ends_on_the_pure_class_images(
    digits: dict[str, Any],
) -> None:
    path = {"from_seed": 1, "to_seed": 2, "steps": 5, "classes": [3, 8]}
    moving = sample_for_spec(digits, _spec(interpolation=path), CPU)
    assert moving.png == sample_for_spec(digits, _spec(interpolation=path), CPU).png
    cells = _cells(moving.png)[0]
    three = _cells(sample_for_spec(digits, _spec(seeds=[1], classes=3), CPU).png)[0, 0]
    eight = _cells(sample_for_spec(digits, _spec(seeds=[2], classes=8), CPU).png)[0, 0]
    assert np.array_equal(cells[0], three) and np.array_equal(cells[-1], eight)
    held = sample_for_spec(digits, _spec(interpolation={**path, "classes": None}, classes=3), CPU)
    assert np.array_equal(moving.latents, held.latents)  # z moves alike; only the class differs
    assert not np.array_equal(cells[2], _cells(held.png)[0][2])


def test_the_same_seed_at_both_ends_holds_z_and_moves_only_the_class(
    digits: dict[str, Any],
) -> None:
    path = {"from_seed": 4, "to_seed": 4, "steps": 3, "classes": [0, 9]}
    result = sample_for_spec(digits, _spec(interpolation=path), CPU)
    assert (result.latents == result.latents[0]).all()
    cells = _cells(result.png)[0]
    assert not np.array_equal(cells[0], cells[1]) and not np.array_equal(cells[1], cells[2])


def test_path_classes_the_model_lacks_or_cannot_draw_are_refused_naming_the_field(
    digits: dict[str, Any], plain: dict[str, Any]
) -> None:
    path = {"points": [1, 2, 3], "steps": 2, "classes": [0, 4, 10]}
    with pytest.raises(ClassesError, match=r"^spec\.interpolation\.classes: class 10 does not"):
        sample_for_spec(digits, _spec(interpolation=path), CPU)
    with pytest.raises(ClassesError, match=r"^spec\.interpolation\.classes: the model of job j"):
        sample_for_spec(plain, _spec(interpolation={**path, "classes": [0, 1, 2]}), CPU)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"interpolation": {"from_seed": 1, "to_seed": 2, "steps": 3, "classes": [1, 2, 3]}},
         "classes: one class per point of the path: 2 points, 3 classes"),
        ({"interpolation": {"from_seed": 1, "to_seed": 2, "steps": 3, "classes": [1, 2]},
          "classes": 4}, "classes: give classes or interpolation.classes, not both"),
    ],
)  # fmt: skip
def test_path_classes_that_do_not_fit_the_path_are_refused(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        _spec(**fields)
