"""How many pixels a sampling job may draw, once the generator's image side is known.

A spec alone cannot tell: 1,000 seeds are 0.8 megapixels from a 28 px model and 65 from a
256 px one. So the bound is checked where the side is known: at submission against the
source job's training spec when it states its shape (shared/jobs/requests.py), and again by
the worker from the checkpoint (worker/gan/sample.py, worker/inverting.py), which also counts
the latents of an `.npy` artifact. Both name the field to change.
"""

from __future__ import annotations

from shared.specs.inversion import DEFAULT_INVERT_COUNT, MAX_INVERT_IMAGES, MAX_RESTARTS
from shared.specs.latent_checks import Problem
from shared.specs.sample import MAX_SEED_IMAGES, SampleSpec

# The side whose largest jobs set the bounds: every job valid before 128 and 256 px existed
# stays valid, and a larger side gets the same memory (fewer images).
_BOUNDING_SIDE = 64
# Pixels one sampling job draws at most (images x side x side): 10,000 images of 64 px, whose
# float32 outputs (held at once) are 0.5 GB in colour; 2,500 images of 128 px, 625 of 256 px.
MAX_SAMPLE_PIXELS = MAX_SEED_IMAGES * _BOUNDING_SIDE**2
# Pixels an inversion optimises at once (images x restarts x side x side), the activations of
# G kept for the backward pass: 64 images by 8 restarts of 64 px; 32 latents of 256 px.
MAX_INVERT_PIXELS = MAX_INVERT_IMAGES * MAX_RESTARTS * _BOUNDING_SIDE**2


def sample_size_problem(spec: SampleSpec, side: int, images: int | None = None) -> Problem | None:
    """The field to change when `spec` draws more pixels from a generator of `side` px images
    than a job may; None when it fits or its count is not known yet. `images`: the count
    when the spec alone does not tell it (the latents of an `.npy` artifact, read)."""
    if spec.invert is not None:
        return _inversion_problem(spec, side, images)
    count = images if images is not None else spec.image_count
    if count is None or count * side * side <= MAX_SAMPLE_PIXELS:
        return None
    most = MAX_SAMPLE_PIXELS // (side * side)
    field = "class_grid" if spec.class_grid is not None else spec.mode
    return {
        "path": f"spec.{field}",
        "message": f"{count:,} images of {side}x{side} px are {count * side * side:,} pixels; "
        f"a sampling job draws at most {MAX_SAMPLE_PIXELS:,} ({most:,} images of this size)",
    }


def _inversion_problem(spec: SampleSpec, side: int, images: int | None) -> Problem | None:
    """Without `images` (the count chosen) an inversion that names no count is taken to
    invert its default count, the most it will."""
    assert spec.invert is not None
    count = images or spec.invert.image_count or DEFAULT_INVERT_COUNT
    latents = count * spec.invert.restarts
    if latents * side * side <= MAX_INVERT_PIXELS:
        return None
    most = MAX_INVERT_PIXELS // (side * side)
    return {
        "path": "spec.invert.restarts" if spec.invert.restarts > 1 else "spec.invert.images",
        "message": f"{count} images by {spec.invert.restarts} restart(s) are {latents} latents "
        f"of {side}x{side} px optimised at once; at this size at most {most} (images x "
        "restarts)",
    }
