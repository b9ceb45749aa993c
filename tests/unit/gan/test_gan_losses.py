from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from worker.gan.losses import discriminator_loss, generator_loss, get_loss


def test_non_saturating_loss_is_bce_against_real_and_fake_labels() -> None:
    real, fake = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([-3.0, 0.2, 40.0])
    expected_d = F.binary_cross_entropy_with_logits(
        real, torch.ones(3)
    ) + F.binary_cross_entropy_with_logits(fake, torch.zeros(3))
    assert discriminator_loss(real, fake).item() == pytest.approx(expected_d.item())
    expected_g = F.binary_cross_entropy_with_logits(fake, torch.ones(3))
    assert generator_loss(fake).item() == pytest.approx(expected_g.item())


def test_losses_stay_finite_for_extreme_logits() -> None:
    huge = torch.tensor([1e4, -1e4])
    assert torch.isfinite(discriminator_loss(huge, huge))
    assert torch.isfinite(generator_loss(huge))


def test_losses_are_found_by_spec_name_and_unknown_names_are_refused() -> None:
    assert get_loss("non_saturating").generator is generator_loss
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        get_loss("hinge")
