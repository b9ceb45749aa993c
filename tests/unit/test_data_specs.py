"""DataSpec: every source, where its data lives, and what the spec alone says of its shape."""

from __future__ import annotations

from typing import Any

import pytest

from shared.specs import SpecError, TrainSpec, validate_job_request
from shared.specs.data import DataSpec

DATASET_ID = "0123456789abcdef0123456789abcdef"


def train(family: str, **data: Any) -> TrainSpec:
    return TrainSpec.model_validate({"model": family, "data": data})


@pytest.mark.parametrize(
    ("source", "shape"),
    [("toy:ring8", (2,)), ("toy:grid25", (2,)), ("toy:gauss1d", (1,))],
)
def test_toy_sources_are_points_of_a_known_dimension(source: str, shape: tuple) -> None:
    data = train("mlp", source=source).data
    assert data.sample_shape == shape and data.is_points and not data.is_image
    with pytest.raises(ValueError, match="dcgan needs image data"):
        train("dcgan", source=source)


def test_mnist_shape_follows_resize_and_channels() -> None:
    assert train("dcgan", source="mnist", path="/d").data.sample_shape == (1, 28, 28)
    data = train("dcgan", source="mnist", path="/d", resize=32, channels=3).data
    assert data.sample_shape == (3, 32, 32)


def test_npz_is_open_until_loaded_unless_the_spec_says() -> None:
    open_npz = DataSpec(source="npz", path="/d/x.npz")
    assert open_npz.sample_shape is None and not open_npz.is_image and not open_npz.is_points
    # Either family is accepted now; the worker checks once it has read the array.
    train("dcgan", source="npz", path="/d/x.npz")
    train("mlp", source="npz", path="/d/x.npz")
    with pytest.raises(ValueError, match="mlp needs point data"):
        train("mlp", source="npz", path="/d/x.npz", resize=32)
    with pytest.raises(ValueError, match="dcgan needs image data"):
        train("dcgan", source="npz", path="/d/x.npz", shape=[2])


def test_images_and_datasets() -> None:
    assert train("dcgan", source="images", key="datasets/faces.zip").data.is_image
    with pytest.raises(ValueError, match="mlp needs point data"):
        train("mlp", source="images", path="/faces")
    data = train("dcgan", source="dataset", dataset_id=DATASET_ID, resize=64, channels=1).data
    assert data.sample_shape == (1, 64, 64)


@pytest.mark.parametrize(
    "data",
    [
        {"source": "toy:grid25", "resize": 32},
        {"source": "toy:gauss1d", "shape": [1]},
        {"source": "npz"},
        {"source": "npz", "path": "/a.npz", "key": "datasets/a.npz"},
        {"source": "images", "path": "/a", "dataset_id": DATASET_ID},
        {"source": "dataset"},
        {"source": "dataset", "dataset_id": DATASET_ID, "path": "/a"},
        {"source": "dataset", "dataset_id": "../../jobs"},
        {"source": "images", "path": "/a", "resize": 48},
        {"source": "images", "path": "/a", "channels": 2},
        {"source": "npz", "path": "/a.npz", "shape": [3]},
        {"source": "npz", "path": "/a.npz", "shape": [1, 28, 32]},
        {"source": "npz", "path": "/a.npz", "shape": [1, 28, 28], "resize": 32},
        {"source": "images", "path": "/a", "shape": [2]},
        {"source": "mnist", "path": "/a", "shape": [1, 28, 28]},
        {"source": "toy:ring9"},
    ],
)
def test_invalid_data_specs_are_refused(data: dict) -> None:
    with pytest.raises(ValueError):
        DataSpec.model_validate(data)


@pytest.mark.parametrize("size", [128, 256])
def test_128_and_256_px_images_are_accepted_in_one_or_three_channels(size: int) -> None:
    for channels in (1, 3):
        data = train("dcgan", source="images", path="/a", resize=size, channels=channels).data
        assert data.sample_shape == (channels, size, size)
        given = DataSpec.model_validate(
            {"source": "npz", "path": "/a.npz", "shape": [channels, size, size]}
        )
        assert given.is_image


def test_a_size_without_a_plan_is_refused_naming_every_size_there_is() -> None:
    with pytest.raises(ValueError) as refused:
        DataSpec.model_validate({"source": "npz", "path": "/a.npz", "shape": [3, 512, 512]})
    assert (
        "shape must be [d] (d = 1 or 2) for points or [channels, size, size] (channels 1 or 3, "
        "size 28, 32, 64, 128 or 256) for images, got [3, 512, 512]"
    ) in str(refused.value)
    with pytest.raises(ValueError, match=r"resize\n  Input should be 28, 32, 64, 128 or 256"):
        DataSpec.model_validate({"source": "images", "path": "/a", "resize": 512})


def test_a_resize_with_no_plan_is_a_problem_naming_the_field_not_a_crash() -> None:
    """Integer literals list their values too (the message once indexed an empty list)."""
    request = {"model": "dcgan", "data": {"source": "images", "path": "/a", "resize": 512}}
    with pytest.raises(SpecError) as refused:
        validate_job_request({"kind": "train", "name": "x", "spec": request})
    assert refused.value.problems == [
        {
            "path": "spec.data.resize",
            "message": "must be one of `28`, `32`, `64`, `128` or `256`, got 512",
        }
    ]
