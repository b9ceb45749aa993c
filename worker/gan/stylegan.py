"""The `stylegan2` family: a StyleGAN2-style generator and residual discriminator, sized for
the CPU (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", 2020).

Kept from StyleGAN2: a mapping network z -> w (z normalised by its second moment, leaky-ReLU
layers at a 100x lower learning rate); a learnt 4x4 constant input; modulated and demodulated
3x3 convolutions, each with its own affine from w to its input channels' styles; per-pixel
noise inputs with a learnt strength per layer; the skip generator (a toRGB per resolution,
summed up the pyramid); a residual discriminator with minibatch standard deviation; equalised
learning rate everywhere (weights drawn N(0, 1) and scaled by He's constant at run time); the
tracked mean of w (`w_avg`, for truncation in W); lazy R1 and path-length regularisation
(worker/gan/style_regularisers.py).

Dropped for size and simplicity: the FIR (blur) filters of up- and downsampling (bilinear
upsampling and average pooling instead), style mixing regularisation, the fused grouped
convolution (the equivalent scale-convolve-rescale form is used, which traces to TorchScript
for any batch), and StyleGAN2's widths: the mapping has `model.depth` layers (4 by default,
the paper's 8) and the synthesis at most `model.width` channels (64 by default, the paper's
512), halving with each doubling of the side past 8 px down to a quarter of that; w has the
latent's dimension (`latent.dim`), as in the paper (z and w both 512 there). As in StyleGAN2 the
image is the toRGB sum itself, with no tanh (the service clamps it to [-1, 1] where it draws),
unless built with `tanh` (`model.tanh`): on MNIST, whose background is exactly -1, the linear
image collapses onto one digit for every latent and tanh's does not (README, issue 25).

Noise: in training each forward draws fresh noise from the generator `noise_source` holds
(set per step from the run's seeded streams by `seeded_noise`, so a run repeats and resumes
bit-exact); in eval mode, which every sampling path uses, the noise is a fixed buffer per
layer (StyleGAN2's `noise_mode='const'`), so a fixed z always gives the same image.

Any square power-of-two side from 32 to 256 px, with 1 or 3 channels, builds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# CPU-sized defaults (the paper's: 8 mapping layers, 512 channels).
DEFAULT_MAPPING_LAYERS = 4
DEFAULT_STYLE_WIDTH = 64
# StyleGAN2's mapping network learns 100x slower than the synthesis (lr multiplier 0.01).
MAPPING_LR_MULTIPLIER = 0.01
# w_avg follows the batch means of w with this decay per training forward (StyleGAN2's).
W_AVG_DECAY = 0.995
# Leaky ReLU of every layer, with the gain that keeps unit variance (StyleGAN2's lrelu).
LEAKY_SLOPE = 0.2
ACTIVATION_GAIN = math.sqrt(2)
# Minibatch standard deviation: groups of at most 4 samples, one feature map (StyleGAN2's).
MBSTD_GROUP = 4
_START = 4  # the constant input's side


def style_channels(width: int, side: int) -> int:
    """Channels at a resolution: `width` up to 8 px, halving with each doubling past it, but
    never below a quarter of `width` (at least 1)."""
    if side <= 8:
        return width
    return max(width * 8 // side, width // 4, 1)


def _activate(x: Tensor) -> Tensor:
    return F.leaky_relu(x, LEAKY_SLOPE) * ACTIVATION_GAIN


class EqualLinear(nn.Linear):
    """A linear layer with equalised learning rate: weights N(0, 1 / lr_mul), scaled by
    lr_mul / sqrt(fan_in) at run time (an `nn.Linear`, so the projection discriminator finds
    its `in_features`)."""

    def __init__(
        self, inputs: int, outputs: int, bias_init: float = 0.0, lr_mul: float = 1.0
    ) -> None:
        super().__init__(inputs, outputs)
        self.lr_mul = lr_mul
        self.scale = lr_mul / math.sqrt(inputs)
        with torch.no_grad():
            self.weight.normal_().div_(lr_mul)
            self.bias.fill_(bias_init / lr_mul)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class EqualConv2d(nn.Conv2d):
    """A convolution (same padding) with equalised learning rate."""

    def __init__(self, inputs: int, outputs: int, kernel: int, bias: bool = True) -> None:
        super().__init__(inputs, outputs, kernel, padding=kernel // 2, bias=bias)
        self.scale = 1 / math.sqrt(inputs * kernel * kernel)
        with torch.no_grad():
            self.weight.normal_()
            if self.bias is not None:
                self.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class MappingNetwork(nn.Module):
    """z -> w: z normalised to unit second moment, then `layers` leaky-ReLU linear layers."""

    def __init__(self, inputs: int, w_dim: int, layers: int) -> None:
        super().__init__()
        dims = [inputs] + [w_dim] * layers
        self.layers = nn.ModuleList(
            EqualLinear(a, b, lr_mul=MAPPING_LR_MULTIPLIER) for a, b in pairwise(dims)
        )

    def forward(self, z: Tensor) -> Tensor:
        x = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        for layer in self.layers:
            x = _activate(layer(x))
        return x


class ModulatedConv2d(nn.Module):
    """A convolution whose input channels are scaled per sample by styles from w (the
    affine's bias starts at 1), then demodulated: each output channel rescaled to unit
    expected variance (StyleGAN2's weight demodulation)."""

    def __init__(
        self, inputs: int, outputs: int, kernel: int, w_dim: int, demodulate: bool = True
    ) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, inputs, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(outputs, inputs, kernel, kernel))
        self.scale = 1 / math.sqrt(inputs * kernel * kernel)
        self.demodulate, self.padding = demodulate, kernel // 2

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        styles = self.affine(w)  # [B, in]
        weight = self.weight * self.scale
        x = x * styles[:, :, None, None].to(x.dtype)
        x = F.conv2d(x, weight.to(x.dtype), padding=self.padding)
        if self.demodulate:
            # sum over (in, kh, kw) of (weight * style)^2, per sample and output channel
            power = (weight.square().sum(dim=(2, 3)) @ styles.square().t()).t()  # [B, out]
            x = x * torch.rsqrt(power + 1e-8)[:, :, None, None].to(x.dtype)
        return x


class StyleLayer(nn.Module):
    """Modulated 3x3 conv (after 2x upsampling when `up`), noise, bias, leaky ReLU."""

    noise_const: Tensor  # a buffer: the fixed noise image of eval mode

    def __init__(self, inputs: int, outputs: int, w_dim: int, side: int, up: bool) -> None:
        super().__init__()
        self.up = up
        self.conv = ModulatedConv2d(inputs, outputs, 3, w_dim)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(outputs))
        self.register_buffer("noise_const", torch.randn(1, 1, side, side))
        self.noise_source: torch.Generator | None = None

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = self.conv(x, w)
        noise: Tensor = self.noise_const
        if self.training:
            shape = (x.shape[0], 1, x.shape[2], x.shape[3])
            noise = torch.randn(shape, generator=self.noise_source).to(x.device)
        x = x + (noise * self.noise_strength).to(x.dtype)
        return _activate(x + self.bias[None, :, None, None].to(x.dtype))


class ToRGB(nn.Module):
    """A modulated 1x1 conv to the image's channels, without demodulation (StyleGAN2's)."""

    def __init__(self, inputs: int, channels: int, w_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(inputs, channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        return self.conv(x, w) + self.bias[None, :, None, None].to(x.dtype)


class StyleGenerator(nn.Module):
    """z [B, inputs] -> images [B, C, side, side]; `inputs` is the latent's dimension (plus
    the class embedding's for a conditional model), w has `w_dim`.

    `forward(z, psi=1.0, return_ws=False)`: ψ < 1 truncates w towards `w_avg`; `return_ws`
    also returns the per-layer w [B, layers, w_dim] the image was drawn from (path length).
    `to_w` and `synthesis` are the two halves, for the W-space tools. `tanh` squashes the
    image into (-1, 1); it adds no parameters, so either way's checkpoints load alike.
    """

    w_avg: Tensor  # buffers: the tracked mean w, and path length's running mean
    pl_mean: Tensor

    def __init__(
        self,
        inputs: int,
        w_dim: int,
        mapping_layers: int,
        width: int,
        side: int,
        channels: int,
        tanh: bool = False,
    ) -> None:
        super().__init__()
        self.tanh = tanh
        self.mapping = MappingNetwork(inputs, w_dim, mapping_layers)
        self.register_buffer("w_avg", torch.zeros(w_dim))
        # Path-length regularisation's running mean of path lengths (style_regularisers).
        self.register_buffer("pl_mean", torch.zeros(()))
        start = style_channels(width, _START)
        self.const = nn.Parameter(torch.randn(start, _START, _START))
        self.layers = nn.ModuleList([StyleLayer(start, start, w_dim, _START, up=False)])
        self.to_rgb = nn.ModuleList([ToRGB(start, channels, w_dim)])
        size, previous = _START * 2, start
        while size <= side:
            current = style_channels(width, size)
            self.layers.append(StyleLayer(previous, current, w_dim, size, up=True))
            self.layers.append(StyleLayer(current, current, w_dim, size, up=False))
            self.to_rgb.append(ToRGB(current, channels, w_dim))
            size, previous = size * 2, current

    @property
    def num_ws(self) -> int:
        """How many w the synthesis takes: one per style layer and one per toRGB."""
        return len(self.layers) + len(self.to_rgb)

    def to_w(self, z: Tensor, psi: float = 1.0) -> Tensor:
        """w of `z` [B, w_dim]; in training the tracked mean `w_avg` follows them. ψ < 1
        moves w towards `w_avg`: w_avg + ψ·(w - w_avg)."""
        w = self.mapping(z)
        if self.training:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().float().mean(dim=0).lerp(self.w_avg, W_AVG_DECAY))
        if psi != 1:
            w = self.w_avg.to(w.dtype).lerp(w, psi)
        return w  # type: ignore[no-any-return]

    def synthesis(self, w: Tensor) -> Tensor:
        """Images of w [B, w_dim] (every layer the same w)."""
        return self.synthesis_ws(w.unsqueeze(1).repeat(1, self.num_ws, 1))

    def synthesis_ws(self, ws: Tensor) -> Tensor:
        """Images of per-layer w [B, num_ws, w_dim]: the layers take ws in order, each
        resolution's two convolutions then its toRGB."""
        x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1).to(ws.dtype)
        return self.synthesis_from(ws, x)

    def synthesis_from(self, ws: Tensor, x: Tensor) -> Tensor:
        """Images of per-layer w from the 4x4 input `x` [B, C, 4, 4] (the learnt constant in
        `synthesis_ws`; bench/quality_probe.py tries other inputs)."""
        x = self.layers[0](x, ws[:, 0])
        image = self.to_rgb[0](x, ws[:, 1])
        index = 2
        for block in range(1, len(self.to_rgb)):
            x = self.layers[2 * block - 1](x, ws[:, index])
            x = self.layers[2 * block](x, ws[:, index + 1])
            image = F.interpolate(image, scale_factor=2, mode="bilinear", align_corners=False)
            image = image + self.to_rgb[block](x, ws[:, index + 2])
            index += 3
        return torch.tanh(image) if self.tanh else image

    def forward(
        self, z: Tensor, psi: float = 1.0, return_ws: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        ws = self.to_w(z, psi).unsqueeze(1).repeat(1, self.num_ws, 1)
        image = self.synthesis_ws(ws)
        return (image, ws) if return_ws else image


class MinibatchStd(nn.Module):
    """Appends one feature map: the standard deviation of the features over groups of up to
    `MBSTD_GROUP` samples, averaged (StyleGAN's minibatch standard deviation)."""

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        group = min(MBSTD_GROUP, batch)
        while batch % group:  # a batch that does not split into 4s: the largest group that does
            group -= 1
        y = x.float().reshape(group, -1, channels, height, width)
        y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt()
        y = y.mean(dim=(1, 2, 3)).reshape(-1, 1, 1, 1).repeat(group, 1, height, width)
        return torch.cat([x, y.to(x.dtype)], dim=1)


class ResidualBlock(nn.Module):
    """Two 3x3 convs then 2x average pooling, beside a pooled 1x1 skip; summed over √2."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(inputs, inputs, 3)
        self.conv1 = EqualConv2d(inputs, outputs, 3)
        self.skip = EqualConv2d(inputs, outputs, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        skip = self.skip(F.avg_pool2d(x, 2))
        x = F.avg_pool2d(_activate(self.conv1(_activate(self.conv0(x)))), 2)
        return (x + skip) / math.sqrt(2)


class _Activated(nn.Module):
    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: Tensor) -> Tensor:
        return _activate(self.layer(x))


def style_discriminator(width: int, side: int, channels: int) -> nn.Sequential:
    """The residual discriminator: fromRGB, a residual block per halving down to 4x4, then
    minibatch std, a 3x3 conv, a linear layer and the one-logit linear layer (a Sequential
    ending in that layer and a Flatten, as the projection discriminator expects)."""
    layers: list[nn.Module] = [_Activated(EqualConv2d(channels, style_channels(width, side), 1))]
    size = side
    while size > _START:
        layers.append(ResidualBlock(style_channels(width, size), style_channels(width, size // 2)))
        size //= 2
    last = style_channels(width, _START)
    layers += [
        MinibatchStd(),
        _Activated(EqualConv2d(last + 1, last, 3)),
        nn.Flatten(1),
        _Activated(EqualLinear(last * _START * _START, last)),
        EqualLinear(last, 1),
        nn.Flatten(0),
    ]
    return nn.Sequential(*layers)


def style_core(generator: nn.Module) -> StyleGenerator | None:
    """The StyleGenerator inside `generator` (itself, a DDP wrapper's or a conditional
    wrapper's network), or None for another family's."""
    module = getattr(generator, "module", generator)  # DDP
    module = getattr(module, "network", module)  # ConditionalGenerator
    return module if isinstance(module, StyleGenerator) else None


@contextmanager
def seeded_noise(generator: nn.Module, source: torch.Generator) -> Iterator[None]:
    """Training noise of a stylegan2 generator drawn from `source` inside the block (a no-op
    for other families); outside it, training noise would come from torch's global RNG."""
    core = style_core(generator)
    layers = [] if core is None else [m for m in core.modules() if isinstance(m, StyleLayer)]
    for layer in layers:
        layer.noise_source = source
    try:
        yield
    finally:
        for layer in layers:
            layer.noise_source = None
