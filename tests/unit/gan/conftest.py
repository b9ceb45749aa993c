"""Fixtures for the GAN engine's unit tests: tiny specs, recording hooks, one CPU thread."""

from __future__ import annotations

import pytest
import torch
from gan_testing import RecordingHooks, mnist_spec, ring_spec

from shared.specs import TrainSpec

# The test machine's cores are shared: one thread keeps timings steady and neighbours happy.
torch.set_num_threads(1)


@pytest.fixture
def hooks() -> RecordingHooks:
    return RecordingHooks()


@pytest.fixture
def tiny_ring_spec() -> TrainSpec:
    return ring_spec()


@pytest.fixture
def tiny_mnist_spec() -> TrainSpec:
    return mnist_spec()
