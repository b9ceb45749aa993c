"""The spec of a training job (`TrainSpec`): model, latent prior, loss, data, optimisation,
cadences and resources. Same spec + same seed + same device type gives the same weights."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    StrictFloat,
    StrictInt,
    field_validator,
    model_serializer,
    model_validator,
)

from shared.specs.data import TOY_POINT_DIMS, DataSpec, StrictModel
from shared.specs.model import ModelSpec
from shared.specs.resources import ResourceSpec
from shared.specs.sample import MAX_LATENT_DIM
from shared.specs.stylegan2 import (
    MAX_REG_EVERY,
    STYLEGAN2_PL_EVERY,
    STYLEGAN2_R1_EVERY,
    AugmentPolicy,
    family_options_problem,
    stylegan2_data_problem,
)

# nz = 100 is the DCGAN default and what most papers and examples use for images.
DEFAULT_LATENT_DIM = 100
# WGAN-GP (Gulrajani et al. 2017, Algorithm 1): penalty weight λ = 10, 5 critic steps per
# generator step, Adam(1e-4, betas=(0, 0.9)). Every other loss takes one D step per G step.
WGAN_GP_LAMBDA = 10.0
WGAN_GP_CRITIC_STEPS = 5
WGAN_GP_LR = 1e-4
WGAN_GP_BETAS = (0.0, 0.9)
# More D steps than this per G step is a typo, not a schedule: every step costs a batch.
MAX_CRITIC_STEPS = 100

# The collapse alarm's warm-up when a spec declares none: a quarter of the run (1/4).
DEFAULT_WARMUP_DIVISOR = 4

LossName = Literal["non_saturating", "least_squares", "hinge", "wgan_gp"]
Precision = Literal["fp32", "bf16", "fp16"]
PriorName = Literal["gaussian", "uniform"]


class LatentSpec(StrictModel):
    """The prior z is drawn from, saved with every checkpoint and used by every sampling path."""

    dim: Annotated[StrictInt, Field(ge=1, le=MAX_LATENT_DIM)] = DEFAULT_LATENT_DIM
    prior: PriorName = "gaussian"


class LossSpec(StrictModel):
    """The GAN objective and its parameters. `"loss": "hinge"` is shorthand for `{"name": ...}`.

    `critic_steps` is the number of discriminator steps per generator step, each on its own
    real batch: 5 for wgan_gp (the paper's), 1 for the others, when not given. `gp_lambda` is
    the gradient-penalty weight λ and belongs to wgan_gp only: 10 when not given.

    `penalty` (wgan_gp only) is how the critic's gradient norm is held near 1: `two_sided`,
    the paper's (‖∇D‖ - 1)², or `one_sided`, max(0, ‖∇D‖ - 1)² (WGAN-LP, Petzka et al. 2018;
    Gulrajani et al. report it performs alike). One-sided is the default: on data on a line
    the two-sided penalty traps a critic whose slope starts with the wrong sign, since
    turning round means passing through slope 0, which it penalises by λ; that critic then
    scores fakes above real points and pushes the generator away from the data.
    """

    name: LossName = "non_saturating"
    gp_lambda: Annotated[StrictFloat, Field(ge=0, le=1e6)] | None = None
    critic_steps: Annotated[StrictInt, Field(ge=1, le=MAX_CRITIC_STEPS)] = 1
    penalty: Literal["one_sided", "two_sided"] | None = None
    # Top-k training (Sinha et al. 2020): the generator learns only from the fraction of its
    # fakes the discriminator rates most real, annealed from all of them down to this fraction
    # (see worker/gan/losses.top_k_fraction); off-mode fakes then stop pulling G between modes.
    top_k: Annotated[StrictFloat, Field(gt=0, le=1)] | None = None
    # R1 (Mescheder et al. 2018; StyleGAN's default): the discriminator's loss gains
    # gamma/2 · E‖∇x D(x)‖² over real samples, which keeps D flat on the data so G settles onto it
    # instead of circling it. None or 0: off. Not with wgan_gp, which has its own penalty.
    r1_gamma: Annotated[StrictFloat, Field(ge=0, le=1e6)] | None = None
    # Lazy R1 (StyleGAN2): the penalty only every `r1_every` D steps, weighted by r1_every.
    # None: every 16 for stylegan2 (whose R1 is on by default), every step for the others.
    r1_every: Annotated[StrictInt, Field(ge=1, le=MAX_REG_EVERY)] | None = None
    # Path-length regularisation (StyleGAN2; stylegan2 only): G's loss gains
    # pl_weight · (‖J_wᵀ y‖ - a)², a the running mean of the lengths, every `pl_every` G
    # steps (weighted by pl_every). None or 0: off; StyleGAN2 uses 2.
    pl_weight: Annotated[StrictFloat, Field(ge=0, le=1e6)] | None = None
    pl_every: Annotated[StrictInt, Field(ge=1, le=MAX_REG_EVERY)] | None = None

    @model_serializer(mode="wrap")
    def _without_unset_regularisers(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Lazy-regulariser fields left unset are left out, so older specs' JSON (and their
        checkpoints' bytes) stay what they were."""
        return _drop_none(handler(self), ("r1_every", "pl_weight", "pl_every"))

    @model_validator(mode="before")
    @classmethod
    def _from_name_with_defaults(cls, value: Any) -> Any:
        value = {"name": value} if isinstance(value, str) else value
        if isinstance(value, dict) and value.get("name") == "wgan_gp":
            value = {
                "gp_lambda": WGAN_GP_LAMBDA,
                "critic_steps": WGAN_GP_CRITIC_STEPS,
                "penalty": "one_sided",
                **value,
            }
        return value

    @model_validator(mode="after")
    def _penalty_only_for_wgan_gp(self) -> LossSpec:
        for option in ("gp_lambda", "penalty"):
            if getattr(self, option) is not None and self.name != "wgan_gp":
                raise ValueError(
                    f"{option} is a wgan_gp parameter; loss {self.name} has no penalty"
                )
        if self.r1_gamma and self.name == "wgan_gp":
            raise ValueError("r1_gamma: wgan_gp has its own gradient penalty (gp_lambda)")
        if self.r1_every is not None and self.name == "wgan_gp":
            raise ValueError("r1_every: wgan_gp has no R1 penalty to make lazy")
        if self.pl_every is not None and not self.pl_weight:
            raise ValueError("pl_every: path-length regularisation is off; give pl_weight too")
        return self


# Adam's decay rates: in [0, 1).
Beta = Annotated[StrictFloat, Field(ge=0, lt=1)]


class TrainParams(StrictModel):
    steps: Annotated[StrictInt, Field(ge=1, le=10_000_000)] = 2000
    batch_size: Annotated[StrictInt, Field(ge=1, le=65536)] = 64
    # Adam(2e-4, betas=(0.5, 0.999)): the DCGAN paper's settings, good for both families here.
    # A wgan_gp spec that leaves them out gets WGAN-GP's instead (see `TrainSpec`).
    lr: Annotated[StrictFloat, Field(gt=0, le=1)] = 2e-4
    betas: tuple[Beta, Beta] = (
        0.5,
        0.999,
    )
    seed: Annotated[StrictInt, Field(ge=0, le=2**63 - 1)] = 0
    # Decay per generator step of an exponential moving average of G's weights, used for
    # samples when set (0.999 is common; StyleGAN's 10k-image half-life is about 0.9955 at
    # batch 32). None: no average, samples come from G itself.
    ema_decay: Annotated[StrictFloat, Field(gt=0, lt=1)] | None = None
    # How both learning rates move over the run: `constant`, or down to 0 at the last step
    # (`linear`, `cosine`), which lets the generator settle onto narrow modes.
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    # Differentiable augmentation for small datasets (DiffAugment, Zhao et al. 2020): every
    # image D sees, real or fake, in D's step and G's, goes through these policies, drawn
    # from the run's seeded streams. Image GANs only; None: no augmentation.
    augment: Annotated[list[AugmentPolicy], Field(min_length=1, max_length=3)] | None = None

    @field_validator("augment")
    @classmethod
    def _policies_once(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("each augmentation policy at most once")
        return value

    @model_serializer(mode="wrap")
    def _without_unset_augment(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """`augment` left unset is left out, so older specs' JSON stays what it was."""
        return _drop_none(handler(self), ("augment",))


# Evaluation figures a run's "best" checkpoint may be chosen by, and whether more is better.
BestFigure = Literal[
    "high_quality", "modes_covered", "classes_covered", "kl_from_uniform", "w1", "frechet_distance"
]
MORE_IS_BETTER: dict[str, bool] = {
    "high_quality": True,
    "modes_covered": True,
    "classes_covered": True,
    "kl_from_uniform": False,
    "w1": False,
    "frechet_distance": False,
}


class KeepCheckpoints(StrictModel):
    """Which checkpoints outlive the retention sweep (shared/retention.py): the `last` N by
    step, and with `best`, the one whose evaluation at its step scored best by that figure.
    The latest is always among the last, so a requeued run always finds its resume point."""

    last: Annotated[StrictInt, Field(ge=1, le=1000)] = 3
    best: BestFigure | None = None


class TrainSpec(StrictModel):
    model: ModelSpec
    latent: LatentSpec = LatentSpec()
    loss: LossSpec = LossSpec()
    data: DataSpec
    train: TrainParams = TrainParams()
    # Steps between checkpoints / sample grids; the last step always gets both.
    checkpoint_every: Annotated[StrictInt, Field(ge=1)] = 500
    sample_every: Annotated[StrictInt, Field(ge=1)] = 250
    # None: every checkpoint is kept.
    keep_checkpoints: KeepCheckpoints | None = None
    # Steps between quality evaluations (modes, W1, spread; worker/gan/evaluation.py), which
    # also run at the last step. None: with every sample grid.
    eval_every: Annotated[StrictInt, Field(ge=1)] | None = None
    # What a mode-collapse warning does: "warn" records it on the job and in its log; "stop"
    # also stops the run at once (its last checkpoint kept) and fails the job with the reason.
    on_collapse: Literal["warn", "stop"] = "warn"
    # Steps the collapse alarm gives a run to learn before it warns that the run does not
    # cover the data, or judges one that has not yet shown it covers every mode (a run that
    # has is judged from then on). None: a quarter of train.steps (`alarm_warmup`).
    collapse_warmup: Annotated[StrictInt, Field(ge=0)] | None = None
    resources: ResourceSpec = ResourceSpec()
    # Arithmetic on a GPU: bf16 or fp16 autocast (fp16 with loss scaling); weights stay fp32.
    # On the CPU only fp32 and bf16 run: fp16 is refused for device_type cpu, and any mixed
    # precision falls back to fp32 (and says so in the log) when "auto" finds no GPU.
    precision: Precision = "fp32"

    @model_validator(mode="before")
    @classmethod
    def _wgan_gp_optimiser_defaults(cls, value: Any) -> Any:
        """A wgan_gp spec that leaves out `train.lr` or `train.betas` gets Adam(1e-4, (0, 0.9)).

        These are the WGAN-GP paper's settings; the DCGAN ones (2e-4, (0.5, 0.999)) are the
        defaults of every other loss. Values the spec gives are always kept.
        """
        if not isinstance(value, dict) or _loss_name(value.get("loss")) != "wgan_gp":
            return value
        train = value.get("train", {})
        if isinstance(train, TrainParams):
            train = train.model_dump(exclude_unset=True)
        if not isinstance(train, dict):
            return value
        return {**value, "train": {"lr": WGAN_GP_LR, "betas": WGAN_GP_BETAS, **train}}

    @property
    def evaluation_every(self) -> int:
        return self.eval_every or self.sample_every

    @property
    def alarm_warmup(self) -> int:
        """The collapse alarm's warm-up in steps: `collapse_warmup`, else a quarter of the run
        (the example recipes, which decay their step over the run, sharpen their modes evenly
        by then; see worker/gan/collapse_alarm.py)."""
        if self.collapse_warmup is not None:
            return self.collapse_warmup
        return -(-self.train.steps // DEFAULT_WARMUP_DIVISOR)

    @model_validator(mode="after")
    def _precision_fits_device(self) -> TrainSpec:
        if self.precision == "fp16" and self.resources.device_type == "cpu":
            raise ValueError(
                "precision fp16 needs a GPU (the CPU has no fast fp16 kernels or loss scaling): "
                "use fp32 or bf16 with device_type cpu"
            )
        return self

    @model_validator(mode="after")
    def _batch_splits_into_packs(self) -> TrainSpec:
        per_rank = max(1, self.train.batch_size // self.resources.devices)
        if per_rank % self.model.pack:
            raise ValueError(
                f"model.pack: each rank's batch ({per_rank} = train.batch_size / "
                f"resources.devices) must split into packs of {self.model.pack}"
            )
        return self

    @model_validator(mode="after")
    def _family_fits_data(self) -> TrainSpec:
        if self.model.family == "dcgan" and self.data.is_points:
            raise ValueError(f"model dcgan needs image data; {self.data.source} is points")
        if self.model.family == "mlp" and self.data.is_image:
            raise ValueError(f"model mlp needs point data; {self.data.source} is images")
        # A custom model takes either kind: its constructors are told the data's shape.
        return self

    @model_validator(mode="after")
    def _stylegan2_options_fit(self) -> TrainSpec:
        """stylegan2's data, and the options that are its own or need an image GAN
        (shared/specs/stylegan2.py)."""
        problem = stylegan2_data_problem(self.model.family, self.data) or family_options_problem(
            self.model.family, self.loss, self.train.augment, self.data
        )
        if problem:
            raise ValueError(problem)
        return self

    @property
    def r1_interval(self) -> int:
        """D steps between lazy R1 penalties: `loss.r1_every`, else 16 for stylegan2 and 1
        (every step) for the other families."""
        if self.loss.r1_every is not None:
            return self.loss.r1_every
        return STYLEGAN2_R1_EVERY if self.model.family == "stylegan2" else 1

    @property
    def pl_interval(self) -> int:
        """G steps between path-length penalties (`loss.pl_every`, else 4)."""
        return self.loss.pl_every or STYLEGAN2_PL_EVERY

    @model_validator(mode="after")
    def _conditional_data_has_labels(self) -> TrainSpec:
        """Toy sources are generated without classes: refused here, at submission. Whether a
        file has labels is known once it is read: the worker fails the job then (DataError)."""
        if self.model.conditional and self.data.source in TOY_POINT_DIMS:
            raise ValueError(
                f"model.conditional: {self.data.source} data has no labels to condition on "
                "(labels come with mnist label files, an .npz `labels` array or the class "
                "sub-folders of an image archive)"
            )
        return self

    @model_validator(mode="after")
    def _vae_takes_no_gan_options(self) -> TrainSpec:
        """A vae trains the ELBO in fp32 from its own decoder: GAN-only options are errors."""
        if self.model.family != "vae":
            return self
        if self.latent.prior != "gaussian":
            raise ValueError(
                f"latent.prior: model vae has a Gaussian prior by construction (its KL term is "
                f"against N(0, I)); use prior gaussian, not {self.latent.prior}"
            )
        if self.loss != LossSpec():
            raise ValueError("loss: model vae trains the ELBO; leave loss out")
        if self.train.ema_decay is not None:
            raise ValueError("train.ema_decay: model vae samples from its decoder; no average")
        if self.precision != "fp32":
            raise ValueError(f"precision: model vae trains in fp32 only, not {self.precision}")
        return self


def _drop_none(fields: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """`fields` without those of `names` that are None."""
    return {key: value for key, value in fields.items() if key not in names or value is not None}


def _loss_name(loss: Any) -> Any:
    """The loss name of a raw `loss` value: a name, a dict with one, or a `LossSpec`."""
    if isinstance(loss, dict):
        return loss.get("name")
    return loss.name if isinstance(loss, LossSpec) else loss
