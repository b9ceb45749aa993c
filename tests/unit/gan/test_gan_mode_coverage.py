import math

import torch

from worker.gan.data import RING8_STD, ring8_modes, ring8_sample
from worker.gan.mode_coverage import mode_coverage


def test_real_ring8_samples_cover_every_mode_with_high_quality() -> None:
    samples = ring8_sample(2500, torch.Generator().manual_seed(0))
    coverage = mode_coverage(samples, ring8_modes(), RING8_STD)
    assert coverage.modes_covered == 8
    assert coverage.high_quality_fraction > 0.98  # 3 std in 2-D holds 98.9%
    assert coverage.kl_from_uniform < 0.01


def test_a_collapsed_generator_covers_one_mode() -> None:
    one_mode = ring8_modes()[3] + RING8_STD * torch.randn(500, 2, generator=torch.Generator())
    coverage = mode_coverage(one_mode, ring8_modes(), RING8_STD)
    assert coverage.modes_covered == 1
    assert math.isclose(coverage.kl_from_uniform, math.log(8), rel_tol=1e-9)


def test_samples_between_modes_are_not_high_quality() -> None:
    between = torch.zeros(100, 2)  # the ring's centre is 1.0 from every mode
    coverage = mode_coverage(between, ring8_modes(), RING8_STD)
    assert coverage.modes_covered == 0 and coverage.high_quality_fraction == 0.0
    assert coverage.kl_from_uniform == math.inf
