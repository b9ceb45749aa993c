"""Images scaled down by area averaging, for what cannot or need not take them whole: a grid
past its pixel bound, a training snapshot of 256 px images, the digit classifier's 28 px
input, an evaluation's stored samples.

Area averaging (each output pixel the mean of the input pixels it covers) is what a picture
viewer's downscale does: no aliasing, no ringing, and a pure function of the pixels, so the
same images always give the same thumbnails.
"""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F


def scaled_down(images: Tensor, side: int) -> Tensor:
    """Images [N, C, H, W] area-averaged so their longer side is `side` (aspect kept);
    unchanged when they are no larger. Float images only (as generators make them)."""
    height, width = images.shape[-2:]
    longest = max(height, width)
    if longest <= side:
        return images
    size = (max(1, height * side // longest), max(1, width * side // longest))
    return F.interpolate(images, size=size, mode="area")
