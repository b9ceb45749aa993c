"""Every random stream of a run, derived from the job seed, plus capture and restore of RNGs.

Data batches, training latents and the fixed sample latents each come from a fresh
`torch.Generator` seeded from (job seed, stream, step or block of steps, rank): toy data,
latents and penalty mixes are drawn 64 steps at a time (`stream_blocks`). Nothing in the loop
depends on generator state carried between steps, so a run repeats exactly and resumes from a
step number alone; the global RNG states are still saved in checkpoints for anything that uses
them (weight init, future augmentations).
"""

from __future__ import annotations

import random
from enum import IntEnum
from typing import Any

import numpy as np
import torch

# numpy's legacy seeding takes 32-bit seeds only.
_NUMPY_SEED_MODULUS = 2**32


class Stream(IntEnum):
    """Which use a derived seed is for, so two uses never share a random sequence."""

    GLOBAL = 0
    DATA = 1
    LATENTS = 2
    DATA_ORDER = 3
    FIXED_SAMPLES = 4
    REFERENCE = 5
    PENALTY_MIX = 6  # WGAN-GP's interpolation weights between real and fake
    EVALUATION = 7  # the latents and reference data of quality evaluations
    SHARD_ORDER = 8  # a sharded dataset's shard order of each epoch
    SHARD_SAMPLES = 9  # its image order within each window of shards
    NOISE = 10  # stylegan2's per-pixel noise inputs in training, and path length's probes
    AUGMENT = 11  # DiffAugment's draws (worker/gan/augment.py)


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from non-negative integers (job seed, stream, step, rank...).

    SeedSequence hashes its input, so neighbouring steps or ranks get unrelated streams.
    """
    state = np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)
    return int(state[0]) >> 1


def generator_for(*parts: int) -> torch.Generator:
    """A CPU generator seeded from `derive_seed(*parts)`; CPU so results match on any device."""
    return torch.Generator().manual_seed(derive_seed(*parts))


def seed_everything(seed: int, rank: int) -> None:
    """Seed torch, numpy and `random` from (job seed, rank)."""
    derived = derive_seed(seed, Stream.GLOBAL, rank)
    torch.manual_seed(derived)
    np.random.seed(derived % _NUMPY_SEED_MODULUS)
    random.seed(derived)


def capture_rng_state(device: torch.device) -> dict[str, Any]:
    """This process's RNG states, as tensors and plain values `weights_only` loading accepts."""
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {
            "version": int(version),
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
    }


def restore_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Put back the states `capture_rng_state` took."""
    # RNG states must be CPU byte tensors, whatever map_location the checkpoint was read with.
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].cpu().numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    python_state = state["python"]
    internal = tuple(int(value) for value in python_state["internal"].tolist())
    random.setstate((python_state["version"], internal, python_state["gauss_next"]))
