"""Perceptual path length (PPL, Karras et al., StyleGAN): how smoothly the generator's output
changes along latent paths, the number behind "do nearby latents give similar images?".

For random pairs (z₁, z₂) and t ~ U(0, 1): d(G(slerp(z₁, z₂; t)), G(slerp(z₁, z₂; t + ε)))
/ ε², with ε = 1e-4 and d the squared distance in a feature space; the mean over pairs whose
value lies within the 1st-99th percentiles (StyleGAN's filter against the rare huge jumps).
StyleGAN measures d with LPIPS (VGG features), which no offline package here ships; ganforge
measures it in the job's digit classifier's features for MNIST and in data space for points
and other images, so the figure compares runs on the same data, not across papers.

Computed in float64 on copies of the networks: at ε = 1e-4 the two outputs differ by about
1e-4, below what float32 features resolve.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from shared.specs import LatentSpec
from worker.gan.conditional import balanced_labels
from worker.gan.latents import slerp
from worker.gan.priors import sample_latents
from worker.gan.seeding import Stream, generator_for

PPL_EPSILON = 1e-4
# The lower and upper quantiles kept (StyleGAN: 1st and 99th percentile).
PPL_KEEP = (0.01, 0.99)
# Latent pairs per measurement: 1,000 points cost milliseconds; 200 image pairs about a
# second of a 28 px DCGAN on one CPU thread.
PPL_PAIRS_POINTS = 1000
PPL_PAIRS_IMAGES = 200
# Pixels put through G at once (in float64): 200 pairs of 64 px images, so up to 64 px the
# pairs go through in one batch as they always did; at 128 px 100 images a batch, at 256 px
# 24: all 400 at once would hold float64 activations of 64 maps of 128 px, 3.4 GB each.
PPL_BATCH_PIXELS = 2 * PPL_PAIRS_IMAGES * 64 * 64
# Which evaluation random stream the pairs come from (0-2 are the samples and references).
_PPL_DRAW = 3


def path_length(
    generator: nn.Module,
    latent: LatentSpec,
    device: torch.device,
    *,
    pairs: int,
    features: nn.Module | None = None,
    seed: int,
    classes: int | None = None,
    image_side: int | None = None,
) -> float:
    """PPL of `generator` (see the module docstring); `features` maps samples to the space d
    is measured in (None: the samples themselves). The same seed gives the same pairs, so
    evaluations along a run compare like with like. `classes`: a conditional generator's,
    the two ends of each pair drawn of one class (classes in turn over the pairs).
    `image_side`: an image generator's, so pairs go through G PPL_BATCH_PIXELS at a time."""
    draw = generator_for(seed, Stream.EVALUATION, _PPL_DRAW)
    z = sample_latents(latent, 2 * pairs, draw).double()
    t = torch.rand(pairs, generator=draw, dtype=torch.float64) * (1 - PPL_EPSILON)
    ends = torch.stack(
        [slerp(z[i], z[pairs + i], torch.stack([t[i], t[i] + PPL_EPSILON])) for i in range(pairs)]
    )  # [pairs, 2, dim]
    net = copy.deepcopy(generator).double().eval()
    measure = copy.deepcopy(features).double().eval() if features is not None else None
    per_batch = 2 * max(1, PPL_BATCH_PIXELS // (2 * (image_side or 1) ** 2))  # whole pairs
    labels = None if classes is None else balanced_labels(pairs, classes).repeat_interleave(2)
    outputs = []
    with torch.no_grad():
        for start in range(0, 2 * pairs, per_batch):
            batch = ends.reshape(2 * pairs, -1)[start : start + per_batch].to(device)
            conditions = () if labels is None else (labels[start : start + per_batch].to(device),)
            out = net(batch, *conditions).cpu()
            outputs.append(out if measure is None else measure(out))
    out = torch.cat(outputs).reshape(pairs, 2, -1)
    distances = ((out[:, 0] - out[:, 1]) ** 2).sum(dim=1) / PPL_EPSILON**2
    low, high = torch.quantile(distances, torch.tensor(PPL_KEEP, dtype=torch.float64))
    kept = distances[(distances >= low) & (distances <= high)]
    return float(kept.mean())
