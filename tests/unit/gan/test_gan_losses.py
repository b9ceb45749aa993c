from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from worker.gan.losses import (
    LOSSES,
    discriminator_loss,
    generator_loss,
    get_loss,
    gradient_penalty,
    real_gradient_penalty,
)


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
    assert set(LOSSES) == {"non_saturating", "least_squares", "hinge", "wgan_gp"}
    with pytest.raises(ValueError, match="unknown loss 'wgan'"):
        get_loss("wgan")


def test_least_squares_hinge_and_critic_losses_follow_their_papers() -> None:
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-0.5, 1.5])
    lsgan, hinge, wgan = get_loss("least_squares"), get_loss("hinge"), get_loss("wgan_gp")
    assert lsgan.discriminator(real, fake).item() == pytest.approx(0.5 * (0.625 + 1.25))
    assert lsgan.generator(fake).item() == pytest.approx(0.5 * (2.25 + 0.25) / 2)
    # max(0, 1 - D(x)): 0 and 0.5; max(0, 1 + D(G(z))): 0.5 and 2.5.
    assert hinge.discriminator(real, fake).item() == pytest.approx(0.25 + 1.5)
    assert hinge.generator(fake).item() == pytest.approx(-0.5)
    assert wgan.discriminator(real, fake).item() == pytest.approx(0.5 - 1.25)
    assert wgan.generator(fake).item() == pytest.approx(-0.5)
    assert wgan.penalised and not hinge.penalised and not lsgan.penalised


def test_gradient_penalty_is_zero_for_a_unit_slope_critic_and_keeps_a_graph() -> None:
    critic = torch.nn.Linear(3, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[0.6, 0.0, 0.8]]))  # |grad| = 1 everywhere
    real, fake, mix = torch.randn(4, 3), torch.randn(4, 3), torch.rand(4)
    assert gradient_penalty(critic, real, fake, mix).item() == pytest.approx(0.0, abs=1e-12)
    with torch.no_grad():
        critic.weight.mul_(3.0)  # |grad| = 3: penalty (3 - 1)^2
    penalty = gradient_penalty(critic, real, fake, mix)
    assert penalty.item() == pytest.approx(4.0)
    penalty.backward()  # create_graph=True: the penalty reaches the critic's weights
    expected = 2 * (3 - 1) * critic.weight.detach() / 3
    assert torch.allclose(critic.weight.grad, expected)


def test_gradient_penalty_undoes_a_loss_scale() -> None:
    critic = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    real, fake, mix = torch.randn(5, 2), torch.randn(5, 2), torch.rand(5)
    plain = gradient_penalty(critic, real, fake, mix)
    scaled = gradient_penalty(critic, real, fake, mix, output_scale=1024.0)
    assert scaled.item() == pytest.approx(plain.item(), rel=1e-5)


def test_the_one_sided_penalty_spares_gentle_slopes_and_matches_above_one() -> None:
    real, fake, mix = torch.ones(4, 1), torch.zeros(4, 1), torch.full((4,), 0.5)
    gentle = torch.nn.Linear(1, 1)
    with torch.no_grad():
        gentle.weight.fill_(0.5)
    assert gradient_penalty(gentle, real, fake, mix, one_sided=True).item() == 0.0
    assert gradient_penalty(gentle, real, fake, mix).item() == pytest.approx(0.25)
    steep = torch.nn.Linear(1, 1)
    with torch.no_grad():
        steep.weight.fill_(-3.0)
    both = (
        gradient_penalty(steep, real, fake, mix),
        gradient_penalty(steep, real, fake, mix, one_sided=True),
    )
    assert both[0].item() == pytest.approx(4.0) and both[1].item() == pytest.approx(4.0)


def test_r1_is_the_squared_slope_on_real_samples_and_reaches_the_weights() -> None:
    critic = torch.nn.Linear(3, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[1.0, 2.0, 2.0]]))  # |grad|^2 = 9 everywhere
    real = torch.randn(6, 3).requires_grad_(True)
    penalty = real_gradient_penalty(real, critic(real))
    assert penalty.item() == pytest.approx(9.0)
    penalty.backward()  # d|w|^2/dw = 2w: the penalty trains D to flatten on the data
    assert torch.allclose(critic.weight.grad, 2 * critic.weight.detach())
    scaled = real_gradient_penalty(real, critic(real), output_scale=512.0)
    assert scaled.item() == pytest.approx(9.0)
    curved = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    points = torch.randn(5, 2).requires_grad_(True)
    (slopes,) = torch.autograd.grad(curved(points).sum(), points)
    expected = (slopes**2).sum(dim=1).mean()
    assert real_gradient_penalty(points, curved(points)).item() == pytest.approx(expected.item())
