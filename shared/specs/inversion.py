"""The `invert` sampling mode's spec: which images to invert (an uploaded dataset, or a PNG
artifact of one of your jobs) and how (steps, learning rate, loss, the pull towards the prior,
restarts).

GAN inversion finds, for each given image x, a latent z whose image G(ψ·z) is closest to x
(ψ the spec's truncation, as in every mode), by gradient descent on z with the generator
fixed. The images must have the generator's shape (channels, height, width): the API checks
it at submission when the dataset's and the generator's shapes are both known
(shared/jobs/inversion_inputs.py), the worker again when it reads them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    PlainSerializer,
    PlainValidator,
    SerializerFunctionWrapHandler,
    StrictFloat,
    StrictInt,
    model_serializer,
    model_validator,
)

from shared.specs.data import StrictModel

# One inversion draws its images as pairs in rows (original, reconstruction): 64 rows of
# 64 px is a ~4,200 px tall PNG, about the most that still opens and reads on a screen, and
# 64 images by 8 restarts is 512 latents optimised at once, one DCGAN batch on a GPU.
MAX_INVERT_IMAGES = 64
# Without `indices` or `count`: the first 16 images (a 4x4 grid's worth), or all when fewer.
DEFAULT_INVERT_COUNT = 16
# Adam reaches its plateau on a DCGAN within a few hundred steps; 5,000 bounds a typo'd
# 500000 to minutes of a GPU rather than hours.
MAX_INVERT_STEPS = 5000
DEFAULT_INVERT_STEPS = 300
# Adam's step on z; 0.05 moves a Gaussian latent (norm ~√dim) by a few percent a step.
DEFAULT_INVERT_LR = 0.05
MAX_INVERT_LR = 10.0
# The pull towards the Gaussian prior's shell, λ·(‖z‖²/dim - 1)², in pixel-MSE units. Measured
# on images a dim-8 dcgan made (200 steps): 0.01 moves ‖z‖²/dim from 0.45-1.6 to 0.75-1.17 and
# leaves a per-pixel MSE of about 1e-3 (against 1e-2 at the start, 1e-10 with no pull); 0.1
# puts it at 0.97-1.02 for 2e-3. A mild default: a real image's best latent may sit off the
# shell, and a user who wants typical latents raises it.
DEFAULT_PRIOR_WEIGHT = 0.01
MAX_PRIOR_WEIGHT = 1e4
# Restarts run side by side from different prior draws; the best per image is kept. Eight
# triples the chance of leaving a bad basin and keeps 64 images at 512 latents.
MAX_RESTARTS = 8
# A PNG artifact is named like every artifact (shared.storage.keys), ending in .png.
PNG_ARTIFACT_NAME = r"^(?:[a-z]+/)?[a-z0-9][a-z0-9._-]*\.png$"

InversionLoss = Literal["pixel", "feature"]
Index = Annotated[StrictInt, Field(ge=0, le=2**31 - 1)]
Indices = Annotated[list[Index], Field(min_length=1, max_length=MAX_INVERT_IMAGES)]
Count = Annotated[StrictInt, Field(ge=1, le=MAX_INVERT_IMAGES)]


class _Selection(StrictModel):
    """Which of the source's images: `indices` (positions, in the order given) or `count`
    (the first n); neither: the first `DEFAULT_INVERT_COUNT`, or all when there are fewer."""

    indices: Indices | None = None
    count: Count | None = None

    @model_validator(mode="after")
    def _indices_or_count(self) -> _Selection:
        if self.indices is not None and self.count is not None:
            raise ValueError("give indices or count, not both")
        return self

    def chosen(self, available: int) -> list[int]:
        """The positions to invert among `available` images (callers check bounds first)."""
        if self.indices is not None:
            return list(self.indices)
        count = self.count if self.count is not None else DEFAULT_INVERT_COUNT
        return list(range(min(count, available)))

    @property
    def image_count(self) -> int | None:
        """How many images, when the spec alone tells."""
        if self.indices is not None:
            return len(self.indices)
        return self.count


class DatasetImages(_Selection):
    """Images of an upload (`POST /api/v1/datasets`), numbered as training reads them."""

    dataset_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


class ArtifactImages(_Selection):
    """The cells of a PNG artifact of one of your jobs, read as the service draws grids
    (cells of the generator's size, 2 px apart, row by row): a sampling job's `grid.png`,
    an earlier inversion's `inversion.png`, a training job's `samples/step-000500.png`. Cells
    left empty at the end of the last row are not images."""

    job_id: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str, Field(min_length=5, max_length=200, pattern=PNG_ARTIFACT_NAME)]


def _dataset_or_artifact(value: Any) -> DatasetImages | ArtifactImages:
    """Either source by its key field; errors keep their path (`spec.invert.images.count`)."""
    if isinstance(value, dict) and "dataset_id" in value:
        return DatasetImages.model_validate(value)
    if isinstance(value, dict) and "job_id" in value:
        return ArtifactImages.model_validate(value)
    raise ValueError(
        'images are {"dataset_id": ...} (an upload) or {"job_id": ..., "name": "grid.png"} '
        "(a PNG artifact of one of your jobs), with optional indices or count"
    )


InversionImages = Annotated[
    DatasetImages | ArtifactImages,
    PlainSerializer(lambda value: value.model_dump(mode="json", exclude_none=True)),
    PlainValidator(_dataset_or_artifact, json_schema_input_type=DatasetImages | ArtifactImages),
]


class InversionSpec(StrictModel):
    """Find the latents of given images (GAN inversion).

    - `images`: where they come from (see `DatasetImages`, `ArtifactImages`);
    - `steps`, `lr`: Adam on the latents, with the generator fixed;
    - `loss`: `pixel` (mean squared error over pixels in G's [-1, 1] range) or `feature`
      (mean squared error in the 64 features of the job's digit classifier, the space the
      service measures MNIST path length in; MNIST generators only);
    - `prior_weight` λ: for a Gaussian prior, λ·(‖z‖²/dim - 1)² keeps z near the shell of
      radius √dim where almost all the prior's mass lies (its negative log-density would pull
      z to the origin, an atypical latent); a uniform prior's box is kept by writing
      z = tanh(w), so z never leaves (-1, 1)^dim and the weight is not used;
    - `restarts`: optimise from this many prior draws (from `seed`) and keep, per image, the
      one that ends with the lowest objective;
    - `space` (`w`: stylegan2 only): `z`, the default, optimises the prior's latents; `w`
      optimises stylegan2's intermediate latent w instead (as StyleGAN2's projector does),
      starting from the w of the prior draws, with λ·mean((w - w_avg)²) as the prior term
      (a pull towards the tracked mean w); `latents.npy` then holds the w drawn.
    """

    images: InversionImages
    steps: Annotated[StrictInt, Field(ge=1, le=MAX_INVERT_STEPS)] = DEFAULT_INVERT_STEPS
    lr: Annotated[StrictFloat, Field(gt=0, le=MAX_INVERT_LR)] = DEFAULT_INVERT_LR
    loss: InversionLoss = "pixel"
    prior_weight: Annotated[StrictFloat, Field(ge=0, le=MAX_PRIOR_WEIGHT)] = DEFAULT_PRIOR_WEIGHT
    restarts: Annotated[StrictInt, Field(ge=1, le=MAX_RESTARTS)] = 1
    seed: Annotated[StrictInt, Field(ge=0, le=2**63 - 1)] = 0
    space: Literal["z", "w"] | None = None

    @model_serializer(mode="wrap")
    def _space_only_when_given(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """`space` left unset is left out, so older specs' JSON stays what it was."""
        fields: dict[str, Any] = handler(self)
        if self.space is None:
            fields.pop("space", None)
        return fields

    @property
    def image_count(self) -> int | None:
        return self.images.image_count
