"""Conditional networks: G(z, y) with a class embedding beside z, the projection
discriminator D(x, y) = psi(phi(x)) + <embed(y), phi(x)>, for dcgan and mlp."""

from __future__ import annotations

import pytest
import torch
from gan_testing import mnist_spec

from shared.specs import TrainSpec
from worker.gan.class_accuracy import class_accuracy_figures
from worker.gan.conditional import (
    ConditionalGenerator,
    ProjectionDiscriminator,
    balanced_labels,
    proportional_labels,
)
from worker.gan.models import build_discriminator, build_generator
from worker.gan.path_length import path_length

NPZ_POINTS = {"source": "npz", "path": "/data/points.npz", "shape": [2]}


def _conditional_mnist(classes: int = 10) -> TrainSpec:
    return mnist_spec(
        model={"family": "dcgan", "width": 4, "conditional": True, "classes": classes}
    )


def _conditional_points() -> TrainSpec:
    return TrainSpec.model_validate(
        {
            "model": {"family": "mlp", "width": 16, "conditional": True, "classes": 3},
            "latent": {"dim": 4},
            "data": NPZ_POINTS,
        }
    )


@pytest.mark.parametrize(
    ("make_spec", "sample_shape"),
    [(_conditional_mnist, (1, 28, 28)), (_conditional_points, (2,))],
    ids=["dcgan", "mlp"],
)
def test_conditional_networks_take_a_class_per_sample(make_spec, sample_shape) -> None:
    spec = make_spec()
    generator, discriminator = build_generator(spec), build_discriminator(spec)
    assert isinstance(generator, ConditionalGenerator)
    assert isinstance(discriminator, ProjectionDiscriminator)
    z = torch.randn(6, spec.latent.dim)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    images = generator(z, labels)
    assert images.shape == (6, *sample_shape)
    assert discriminator(images, labels).shape == (6,)
    # Without labels G draws classes in turn.
    generator.eval()
    in_turn = torch.arange(6) % (spec.model.classes or 0)
    assert torch.equal(generator(z), generator(z, in_turn))


def test_the_class_changes_what_g_draws_from_the_same_latent() -> None:
    generator = build_generator(_conditional_mnist()).eval()
    z = torch.randn(1, 8).repeat(2, 1)
    images = generator(z, torch.tensor([3, 7]))
    assert not torch.equal(images[0], images[1])


def test_the_projection_adds_the_class_embeddings_inner_product_with_the_features() -> None:
    discriminator = build_discriminator(_conditional_mnist()).eval()
    assert isinstance(discriminator, ProjectionDiscriminator)
    x = torch.randn(4, 1, 28, 28)
    labels = torch.tensor([0, 5, 5, 9])
    # Starts as the unconditional D: the embedding is zero.
    assert torch.equal(discriminator(x, labels), discriminator(x))
    with torch.no_grad():
        discriminator.embed.weight.normal_()
    features = discriminator.trunk(x).flatten(1)
    expected = discriminator(x) + (discriminator.embed(labels) * features).sum(dim=1)
    assert torch.allclose(discriminator(x, labels), expected, atol=1e-5)


def test_unconditional_networks_keep_their_state_dict_keys() -> None:
    plain = build_generator(mnist_spec()).state_dict()
    assert next(iter(plain)) == "1.weight"  # the Sequential's own keys, as old checkpoints hold
    conditional = build_generator(_conditional_mnist()).state_dict()
    assert {"embed.weight", "network.1.weight"} <= set(conditional)


def test_building_a_conditional_model_needs_its_classes_from_the_data() -> None:
    open_spec = mnist_spec(model={"family": "dcgan", "width": 4, "conditional": True})
    with pytest.raises(ValueError, match=r"model\.classes is read from the data's labels"):
        build_generator(open_spec)


def test_labels_come_in_turn_or_in_the_datas_proportions() -> None:
    assert balanced_labels(7, 3).tolist() == [0, 1, 2, 0, 1, 2, 0]
    shares = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    labels = proportional_labels(shares, 11, torch.Generator().manual_seed(0))
    assert torch.bincount(labels, minlength=3).tolist() == [6, 3, 2]  # 5.5, 3.3, 2.2


def test_class_accuracy_counts_images_classified_as_asked_per_class() -> None:
    asked = torch.tensor([0] * 50 + [1] * 50)
    predicted = asked.clone()
    predicted[:10] = 1  # 10 of the 0s drawn as 1s
    figures = class_accuracy_figures(predicted, asked, classes=3)
    assert figures["class_accuracy"] == 0.9
    assert figures["class_accuracy_samples"] == 100
    assert figures["per_class_accuracy"] == [0.8, 1.0, None]
    assert figures["per_class_samples"] == [50, 50, 0]
    low, high = figures["class_accuracy_interval"]
    assert 0.8 < low < 0.9 < high < 0.97
    assert figures["per_class_accuracy_interval"][1] == [1.0, 1.0]
    assert figures["per_class_accuracy_interval"][2] is None


def test_path_length_keeps_each_pairs_class_so_it_measures_the_latent_path_alone() -> None:
    spec = _conditional_points()
    generator = build_generator(spec)
    cpu = torch.device("cpu")
    fixed = path_length(generator, spec.latent, cpu, pairs=50, seed=0, classes=3)
    # Classes in turn over the pairs' ends give each end of a pair another class: the jump
    # between classes, divided by ε², swamps the path.
    mixed = path_length(generator, spec.latent, cpu, pairs=50, seed=0)
    assert 0 < fixed * 1e6 < mixed
