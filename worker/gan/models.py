"""Generator and discriminator networks, built from a `TrainSpec` by model family.

Networks are plain `nn.Sequential`s so their state_dicts have stable keys and load anywhere.
Discriminators return one logit per sample, shape [B]. A `custom` model's networks are the
user's own classes, from its code bundle (`plugins`), under the same contract.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

from torch import Tensor, nn

from shared.specs import TrainSpec
from shared.specs.data import DataSpec
from shared.specs.stylegan2 import STYLE_SIDES
from worker.gan.conditional import (
    CLASS_EMBEDDING_DIM,
    ConditionalGenerator,
    ProjectionDiscriminator,
)
from worker.gan.data import known_shape, point_dim
from worker.gan.plugins import build_custom_discriminator, build_custom_generator
from worker.gan.stylegan import (
    DEFAULT_MAPPING_LAYERS,
    DEFAULT_STYLE_WIDTH,
    StyleGenerator,
    style_discriminator,
)

# Big enough for an 8-mode ring to be learnt in a few thousand steps, small enough to run at
# well over 100 steps/s on one CPU core.
DEFAULT_MLP_WIDTH = 128
# Hidden layers in each MLP: three is what the Unrolled GAN / VEEGAN toy set-ups use.
MLP_HIDDEN_LAYERS = 3
# DCGAN's base channel count (ngf / ndf in pytorch/examples).
DEFAULT_DCGAN_WIDTH = 64
# Negative slope of the discriminators' LeakyReLU, as in the DCGAN paper.
LEAKY_SLOPE = 0.2
# DCGAN paper: all conv weights from N(0, 0.02), batch-norm scales from N(1, 0.02).
INIT_STD = 0.02


@dataclass(frozen=True)
class ImageShape:
    """Channels and side length of square training images."""

    channels: int
    size: int


# Image shape of a source whose spec does not state one (`DataSpec.sample_shape`); any
# shape with a `_DCGAN_PLANS` entry (28, 32, 64, 128, 256 px; 1 or 3 channels) builds a dcgan.
IMAGE_SHAPES: dict[str, ImageShape] = {"mnist": ImageShape(channels=1, size=28)}


@dataclass(frozen=True)
class _DcganPlan:
    """How a DCGAN reaches an image size: a first feature map, then stride-2 doublings."""

    start_size: int
    doublings: int


# 28 = 7 * 2 * 2, 32 = 4 * 2 ** 3, 64 = 4 * 2 ** 4; the 64 px plan is pytorch/examples' DCGAN.
# 128 = 4 * 2 ** 5 and 256 = 4 * 2 ** 6 add doublings at the high-resolution end.
_DCGAN_PLANS: dict[int, _DcganPlan] = {
    28: _DcganPlan(start_size=7, doublings=2),
    32: _DcganPlan(start_size=4, doublings=3),
    64: _DcganPlan(start_size=4, doublings=4),
    128: _DcganPlan(start_size=4, doublings=5),
    256: _DcganPlan(start_size=4, doublings=6),
}
# Feature maps grow to at most width * 8 (512 at the default width), the 64 px plan's widest:
# uncapped, doubling per layer would give 256 px a 2,048-channel 4x4 layer (a 67M-parameter
# convolution each side); capped, the 256 px G and D have about 11M parameters each, and the
# extra layers at 128 and 256 px add resolution, not width. 28-64 px never reach the cap, so
# their networks (and checkpoints) are unchanged.
MAX_WIDTH_MULTIPLE = 8


def image_shape(data: DataSpec) -> ImageShape:
    """The shape of the images a data source yields; ValueError for point sources."""
    shape = data.sample_shape
    if shape is not None and len(shape) == 3:
        return ImageShape(channels=shape[0], size=shape[1])
    if data.source not in IMAGE_SHAPES:
        raise ValueError(f"{data.source} is not an image source")
    return IMAGE_SHAPES[data.source]


def build_generator(spec: TrainSpec) -> nn.Module:
    """The generator for `spec`: latent [B, dim] -> points [B, 2] or images [B, C, H, W].

    For a vae this is its decoder, so sampling treats every family alike.
    """
    generator = _BUILDERS[network_family(spec)][0](spec)
    if not spec.model.conditional:
        return generator
    return ConditionalGenerator(generator, _classes(spec))


def build_discriminator(spec: TrainSpec) -> nn.Module:
    """The discriminator for `spec`: a sample batch -> logits [B / pack]; a vae's encoder trunk."""
    network = _BUILDERS[network_family(spec)][1](spec)
    if spec.model.conditional:  # never packed (ModelSpec refuses pack > 1 with it)
        return _projection(network, _classes(spec))
    return Packed(network, spec.model.pack) if spec.model.pack > 1 else network


def _classes(spec: TrainSpec) -> int:
    if spec.model.classes is None:
        raise ValueError(
            "model.classes is read from the data's labels: call data.with_classes(spec, "
            "data_path) before building a conditional model"
        )
    return spec.model.classes


def _projection(network: nn.Module, classes: int) -> nn.Module:
    """A built-in discriminator (a Sequential ending in its one-logit layer and a Flatten) as
    a projection discriminator: that layer is psi, everything before it phi."""
    assert isinstance(network, nn.Sequential)
    last = network[-2]
    if isinstance(last, nn.Conv2d):
        kernel = last.kernel_size
        features = last.in_channels * kernel[0] * kernel[1]
    else:
        assert isinstance(last, nn.Linear)
        features = last.in_features
    return ProjectionDiscriminator(network[:-2], network[-2:], features, classes)


def _generator_inputs(spec: TrainSpec) -> int:
    """What G's first layer takes: z, and a conditional model's class embedding beside it."""
    return spec.latent.dim + (CLASS_EMBEDDING_DIM if spec.model.conditional else 0)


class Packed(nn.Module):
    """PacGAN: the discriminator judges `pack` samples at once, concatenated along the feature
    (points) or channel (images) axis. A collapsed generator's packs look alike, which the
    discriminator learns to spot, so packing fights mode collapse (Lin et al., 2018).
    """

    def __init__(self, network: nn.Module, pack: int):
        super().__init__()
        self.network, self.pack = network, pack

    def forward(self, samples: Tensor) -> Tensor:
        count = samples.shape[0]
        if count % self.pack:
            raise ValueError(f"a batch of {count} cannot be cut into packs of {self.pack}")
        grouped = samples.reshape(
            count // self.pack, self.pack * samples.shape[1], *samples.shape[2:]
        )
        return self.network(grouped)  # type: ignore[no-any-return]


def network_family(spec: TrainSpec) -> str:
    """The GAN family whose networks `spec` builds: its own, or a vae's by its data kind.

    A vae reuses the GAN networks of its data: dcgan for images, mlp for points.
    """
    if spec.model.family != "vae":
        return spec.model.family
    return "dcgan" if spec.data.is_image else "mlp"


def sample_kind(spec: TrainSpec) -> str:
    """What `spec`'s generator makes, "images" or "points": dcgan images and mlp points, a
    custom generator what its data is (the data's shape is known before networks are built)."""
    family = network_family(spec)
    if family == "custom":
        return "images" if len(known_shape(spec.data)) == 3 else "points"
    return "images" if family in ("dcgan", "stylegan2") else "points"


def _mlp_width(spec: TrainSpec) -> int:
    return spec.model.width or DEFAULT_MLP_WIDTH


def _mlp_depth(spec: TrainSpec) -> int:
    return spec.model.depth or MLP_HIDDEN_LAYERS


def _mlp_generator(spec: TrainSpec) -> nn.Module:
    width, batch_norm = _mlp_width(spec), spec.model.generator_norm == "batch"
    layers: list[nn.Module] = []
    inputs = _generator_inputs(spec)
    for _ in range(_mlp_depth(spec)):
        layers.append(nn.Linear(inputs, width))
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(nn.ReLU())
        inputs = width
    return nn.Sequential(*layers, nn.Linear(width, point_dim(spec.data)))


def _mlp_discriminator(spec: TrainSpec) -> nn.Module:
    width = _mlp_width(spec)
    inputs = point_dim(spec.data) * spec.model.pack
    layers: list[nn.Module] = [nn.Linear(inputs, width), nn.LeakyReLU(LEAKY_SLOPE)]
    for _ in range(_mlp_depth(spec) - 1):
        layers += [nn.Linear(width, width), nn.LeakyReLU(LEAKY_SLOPE)]
    return nn.Sequential(*layers, nn.Linear(width, 1), nn.Flatten(0))


def _dcgan_layout(spec: TrainSpec) -> tuple[ImageShape, _DcganPlan, int]:
    shape = image_shape(spec.data)
    if shape.size not in _DCGAN_PLANS:
        raise ValueError(f"dcgan has no layout for {shape.size}x{shape.size} images")
    return shape, _DCGAN_PLANS[shape.size], spec.model.width or DEFAULT_DCGAN_WIDTH


def dcgan_channels(width: int, doublings: int) -> list[int]:
    """Feature maps of D's stride-2 layers from the image inwards: width, 2·width, 4·width,
    ... capped at MAX_WIDTH_MULTIPLE·width, one per doubling. G uses them in reverse."""
    return [width * min(2**layer, MAX_WIDTH_MULTIPLE) for layer in range(doublings)]


def _dcgan_generator(spec: TrainSpec) -> nn.Module:
    shape, plan, width = _dcgan_layout(spec)
    widths, inputs = dcgan_channels(width, plan.doublings)[::-1], _generator_inputs(spec)
    layers: list[nn.Module] = [
        nn.Unflatten(1, (inputs, 1, 1)),
        nn.ConvTranspose2d(inputs, widths[0], plan.start_size, 1, 0, bias=False),
        nn.BatchNorm2d(widths[0]),
        nn.ReLU(),
    ]
    for channels, halved in pairwise(widths):
        layers += [
            nn.ConvTranspose2d(channels, halved, 4, 2, 1, bias=False),
            nn.BatchNorm2d(halved),
            nn.ReLU(),
        ]
    layers += [nn.ConvTranspose2d(widths[-1], shape.channels, 4, 2, 1, bias=False), nn.Tanh()]
    return _dcgan_init(nn.Sequential(*layers))


def _dcgan_discriminator(spec: TrainSpec) -> nn.Module:
    shape, plan, width = _dcgan_layout(spec)
    widths = dcgan_channels(width, plan.doublings)
    # No batch norm on the first layer, as in the DCGAN paper: it sees raw pixels.
    layers: list[nn.Module] = [
        nn.Conv2d(shape.channels * spec.model.pack, widths[0], 4, 2, 1, bias=False),
        nn.LeakyReLU(LEAKY_SLOPE),
    ]
    for channels, doubled in pairwise(widths):
        layers += [
            nn.Conv2d(channels, doubled, 4, 2, 1, bias=False),
            _discriminator_norm(spec, doubled),
            nn.LeakyReLU(LEAKY_SLOPE),
        ]
    layers += [nn.Conv2d(widths[-1], 1, plan.start_size, 1, 0, bias=False), nn.Flatten(0)]
    return _dcgan_init(nn.Sequential(*layers))


def _discriminator_norm(spec: TrainSpec, channels: int) -> nn.Module:
    """Batch norm, except for a gradient-penalised critic: layer norm (one group) there.

    The penalty is per sample; batch norm mixes the samples of a batch (and, under DDP, differs
    between ranks), which is why the WGAN-GP paper swaps it for layer norm.
    """
    if spec.loss.name == "wgan_gp":
        return nn.GroupNorm(1, channels)
    return nn.BatchNorm2d(channels)


def _dcgan_init(network: nn.Module) -> nn.Module:
    for module in network.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(module.weight, 0.0, INIT_STD)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.normal_(module.weight, 1.0, INIT_STD)
            nn.init.zeros_(module.bias)
    return network


def _style_layout(spec: TrainSpec) -> tuple[ImageShape, int]:
    shape = image_shape(spec.data)
    if shape.size not in STYLE_SIDES:
        sides = ", ".join(str(side) for side in STYLE_SIDES)
        raise ValueError(
            f"stylegan2 builds square images of side {sides} px, not {shape.size}x{shape.size} "
            "(give data.resize)"
        )
    return shape, spec.model.width or DEFAULT_STYLE_WIDTH


def _style_generator(spec: TrainSpec) -> nn.Module:
    shape, width = _style_layout(spec)
    mapping = spec.model.depth or DEFAULT_MAPPING_LAYERS
    inputs = _generator_inputs(spec)
    return StyleGenerator(
        inputs,
        spec.latent.dim,
        mapping,
        width,
        shape.size,
        shape.channels,
        tanh=bool(spec.model.tanh),
    )


def _style_discriminator(spec: TrainSpec) -> nn.Module:
    shape, width = _style_layout(spec)
    return style_discriminator(width, shape.size, shape.channels * spec.model.pack)


_Builder = Callable[[TrainSpec], nn.Module]
# (generator, discriminator) per `ModelSpec.family`.
_BUILDERS: dict[str, tuple[_Builder, _Builder]] = {
    "mlp": (_mlp_generator, _mlp_discriminator),
    "dcgan": (_dcgan_generator, _dcgan_discriminator),
    "stylegan2": (_style_generator, _style_discriminator),
    "custom": (build_custom_generator, build_custom_discriminator),
}
