"""The model part of a training spec (`ModelSpec`): the network family, its size and its
family's options, checked against one another, and the class count of a conditional model.
Its JSON is part of every checkpoint, so a field added here must dump as before when unset."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    JsonValue,
    SerializerFunctionWrapHandler,
    StrictBool,
    StrictInt,
    field_validator,
    model_serializer,
    model_validator,
)

from shared.specs import custom_model
from shared.specs.data import StrictModel

# PacGAN's paper packs 2 to 4; 8 leaves room to experiment without absurd batches.
MAX_PACK = 8
# Classes a conditional model may have: ImageNet's 1,000 is the largest labelled set a GAN is
# commonly conditioned on; 2 is the least that makes a condition.
MIN_CLASSES = 2
MAX_CLASSES = 1000
# The families that take `model.conditional` (worker/gan/conditional.py).
CONDITIONAL_FAMILIES = ("mlp", "dcgan", "stylegan2")

ModelFamily = Literal["mlp", "dcgan", "stylegan2", "vae", "custom"]


class ModelSpec(StrictModel):
    """Which network family and how wide. `"model": "mlp"` is shorthand for `{"family": "mlp"}`.

    `vae` is a variational autoencoder baseline for either kind of data: its decoder is the
    generator (dcgan for images, mlp for points) and it trains the ELBO, not `loss`.

    `custom` trains the user's own networks, for either kind of data: `code` names the code
    bundle, `generator` and `discriminator` the classes in it, `generator_args` and
    `discriminator_args` their constructors' keyword arguments (shared/specs/custom_model.py;
    the classes' contract is worker/gan/plugins.py's). `pack` works as for the built-ins;
    `width`, `depth` and `generator_norm` are the built-ins' own.

    `stylegan2` is a StyleGAN2-style family for square images of side 32-256 px (a power of
    two; worker/gan/stylegan.py says what it keeps of the paper): `width` is its most
    channels (64 when not given), `depth` its mapping network's layers (4 when not given)
    and `tanh` true ends its generator in tanh.
    """

    family: ModelFamily
    # Hidden units (mlp) or base channel count (dcgan); None picks the family's default. A vae
    # reads it as the family of its data does.
    width: Annotated[StrictInt | None, Field(ge=4, le=4096)] = None
    # PacGAN packing: the discriminator sees this many samples at once (1 = plain GAN).
    # PacGAN2 covers 7.9 of ring8's 8 modes at 95.6% high quality in the paper.
    pack: Annotated[StrictInt, Field(ge=1, le=MAX_PACK)] = 1
    # mlp: hidden layers in each network (None: 3, the Unrolled GAN / VEEGAN toy nets;
    # PacGAN's 2-D generator has 4 of 400 units); stylegan2: layers of the mapping network
    # (None: 4). generator_norm (mlp only): batch norm after each of the generator's hidden
    # layers, as in PacGAN's.
    depth: Annotated[StrictInt, Field(ge=1, le=16)] | None = None
    generator_norm: Literal["none", "batch"] = "none"
    # stylegan2 only: end the generator in tanh, as dcgan's does (None: StyleGAN2's linear
    # image). On MNIST, whose background is exactly -1, the linear image collapses onto one
    # digit within 500 steps and tanh does not (README, issue 25).
    tanh: StrictBool | None = None
    # A class-conditional GAN (mlp and dcgan): G(z, y) and a projection discriminator D(x, y),
    # trained on the labels that come with the data. `classes` is how many: the worker fills
    # it in from the labels (so checkpoints carry it), and a spec may give it to insist.
    conditional: StrictBool = False
    classes: Annotated[StrictInt, Field(ge=MIN_CLASSES, le=MAX_CLASSES)] | None = None
    # custom only (see the class docstring).
    code: str | None = None
    generator: str | None = None
    discriminator: str | None = None
    generator_args: dict[str, JsonValue] | None = None
    discriminator_args: dict[str, JsonValue] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"family": value} if isinstance(value, str) else value

    @field_validator("code")
    @classmethod
    def _code_is_a_bundle_id(cls, value: str | None) -> str | None:
        return None if value is None else custom_model.check_code_id(value)

    @field_validator("generator", "discriminator")
    @classmethod
    def _names_a_class(cls, value: str | None) -> str | None:
        return None if value is None else custom_model.check_class_path(value)

    @field_validator("generator_args", "discriminator_args")
    @classmethod
    def _args_are_bounded(cls, value: dict[str, Any] | None, info: Any) -> dict[str, Any] | None:
        return None if value is None else custom_model.check_args(value, info.field_name)

    @model_validator(mode="after")
    def _pack_is_for_gans(self) -> ModelSpec:
        if self.family == "vae" and self.pack != 1:
            raise ValueError("pack: a vae has no discriminator to pack for")
        given = {name: getattr(self, name) is not None for name in custom_model.CUSTOM_ONLY}
        given |= {
            "width": self.width is not None,
            "depth": self.depth is not None,
            "generator_norm": self.generator_norm != "none",
        }
        problem = custom_model.family_field_problem(self.family, given)
        if problem:
            raise ValueError(problem)
        if self.family not in ("mlp", "stylegan2") and self.depth is not None:
            raise ValueError(
                f"depth: an mlp option (hidden layers) or stylegan2's (mapping layers), "
                f"not {self.family}'s"
            )
        if self.family != "mlp" and self.generator_norm != "none":
            raise ValueError(f"generator_norm: an mlp option, not {self.family}'s")
        if self.family != "stylegan2" and self.tanh is not None:
            raise ValueError(f"tanh: a stylegan2 option, not {self.family}'s")
        return self

    @model_serializer(mode="wrap")
    def _unconditional_as_before(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """An unconditional model's dump leaves out `conditional` and `classes`, and an unset
        `tanh` is left out, so its spec JSON, and with it every checkpoint's bytes, is what it
        was before they existed."""
        fields: dict[str, Any] = handler(self)
        if self.tanh is None:
            fields.pop("tanh", None)
        if not self.conditional and self.classes is None:
            fields.pop("conditional", None)
            fields.pop("classes", None)
        return fields

    @model_validator(mode="after")
    def _conditional_fits_family(self) -> ModelSpec:
        if self.classes is not None and not self.conditional:
            raise ValueError("classes: the number of classes is for a conditional model")
        if not self.conditional:
            return self
        if self.family not in CONDITIONAL_FAMILIES:
            families = " and ".join(CONDITIONAL_FAMILIES)
            raise ValueError(f"conditional: only {families} take a class, not {self.family}")
        if self.pack != 1:
            # A pack mixes several classes in one judgement, which a projection cannot score.
            raise ValueError(
                "conditional: a conditional discriminator judges one sample at a time; use pack 1"
            )
        return self
