"""The spec of a sampling job (`SampleSpec`) and the parts that say which latents to draw:
seeds, explicit vectors, an `.npy` artifact, paths through several latents, neighbourhoods and
latent arithmetic (the latent-space tools).

A latent is given as a seed (an integer: the prior's draw for that seed, as in `seeds`) or as a
vector (a list of numbers, one per latent dimension). A vector's length must be the source
checkpoint's `latent.dim`: the API checks it at submission (shared/jobs/sample_inputs.py), naming
the vector by its path (`spec.latents.3`), and the worker again as it draws
(worker/gan/latents.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    PlainSerializer,
    PlainValidator,
    SerializerFunctionWrapHandler,
    StrictBool,
    StrictFloat,
    StrictInt,
    TypeAdapter,
    field_validator,
    model_serializer,
    model_validator,
)

from shared.specs.data import StrictModel
from shared.specs.inversion import InversionSpec
from shared.specs.resources import ResourceSpec

# Largest latent we accept: far beyond any published GAN, small enough to keep a typo
# (dim: 1000000) from allocating gigabytes on a shared node.
MAX_LATENT_DIM = 4096
# One sampling job makes at most this many images: a 32x32 grid, still one readable PNG.
MAX_SEEDS = 1024
# A `seeds` job alone may draw up to this many (bulk sampling: a set of fakes to score or
# train on): a 100 x 100 grid, about 3,000 px a side for 28 px images, drawn in about as
# many seconds on one CPU thread (bench/sampling.py).
MAX_SEED_IMAGES = 10_000
# An interpolation is drawn as one row: 64 images of 28 px is a ~1,900 px wide strip, about
# the widest that still reads on a screen; 2 is just the two endpoints.
MIN_INTERPOLATION_STEPS = 2
MAX_INTERPOLATION_STEPS = 64
# A neighbourhood is one row per radius, the centre and then `count` neighbours: 16 rows of
# 64 images is MAX_SEEDS, the largest grid a job draws.
MAX_RADII = 16
MAX_NEIGHBOURS = MAX_INTERPOLATION_STEPS - 1
# Radii and weights far past the prior's scale (a Gaussian latent's norm is about √dim, at most
# 64 here) are typos; the bound keeps latents finite in float32.
MAX_RADIUS = 1e4
MAX_WEIGHT = 1e4
# Arithmetic is drawn as one strip (each term, then the result): a handful of terms reads.
MAX_TERMS = 16
# Class numbers a sampling job may ask for: below train.py's MAX_CLASSES (kept in step by a
# test; train.py imports this module, so it cannot import that one).
MAX_CLASS = 999
# `.npy` artifacts are named like every artifact (shared.storage.keys), ending in .npy.
NPY_ARTIFACT_NAME = r"^(?:[a-z]+/)?[a-z0-9][a-z0-9._-]*\.npy$"

Seed = Annotated[StrictInt, Field(ge=0, le=2**63 - 1)]
ClassId = Annotated[StrictInt, Field(ge=0, le=MAX_CLASS)]
FiniteFloat = Annotated[StrictFloat, Field(allow_inf_nan=False)]
LatentVector = Annotated[list[FiniteFloat], Field(min_length=1, max_length=MAX_LATENT_DIM)]
JobIdText = Annotated[str, Field(min_length=1, max_length=64)]

_SEED = TypeAdapter(Seed)
_CLASS = TypeAdapter(ClassId)
_CLASSES = TypeAdapter(Annotated[list[ClassId], Field(min_length=1, max_length=MAX_SEED_IMAGES)])
_VECTOR = TypeAdapter(LatentVector)
_VECTORS = TypeAdapter(Annotated[list[LatentVector], Field(min_length=1, max_length=MAX_SEEDS)])


def _seed_or_vector(value: Any) -> int | list[float]:
    """A seed (an integer) or a latent vector (a list of numbers); errors keep their path."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _SEED.validate_python(value)
    if isinstance(value, list):
        return _VECTOR.validate_python(value)
    raise ValueError("a latent is a seed (an integer) or a vector (a list of numbers)")


def _class_or_classes(value: Any) -> int | list[int]:
    """One class (an integer) or one per image (a list); errors keep their path."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _CLASS.validate_python(value)
    if isinstance(value, list):
        return _CLASSES.validate_python(value)
    raise ValueError("classes is one class (an integer) for every image, or a list, one per image")


# `7` or `[0, 1, 7]`, validated by hand for the same reason as LatentPoint below.
ClassChoice = Annotated[
    int | list[int],
    PlainValidator(_class_or_classes, json_schema_input_type=ClassId | list[ClassId]),
]


# Plain JSON either way (`7` or `[0.1, -0.3, ...]`), validated by hand so an error's path is
# the point's own (`spec.interpolation.points.2.0`), without pydantic's union branch names.
LatentPoint = Annotated[
    int | list[float],
    PlainValidator(_seed_or_vector, json_schema_input_type=Seed | LatentVector),
]


class LatentsArtifact(StrictModel):
    """An `.npy` artifact of one of your jobs holding latents [n, dim] (float16/32/64), e.g.
    another sampling job's `latents.npy`. Read with `allow_pickle=False`."""

    job_id: JobIdText
    name: Annotated[str, Field(min_length=5, max_length=200, pattern=NPY_ARTIFACT_NAME)]


def _vectors_or_artifact(value: Any) -> list[list[float]] | LatentsArtifact:
    """A list of vectors, or an artifact's name; errors keep their path (`spec.latents.3.0`)."""
    if isinstance(value, dict):
        return LatentsArtifact.model_validate(value)
    if isinstance(value, list):
        return _VECTORS.validate_python(value)
    raise ValueError(
        'latents are a list of vectors, or {"job_id": ..., "name": "latents.npy"} naming an '
        ".npy artifact of one of your jobs"
    )


def _plain_latents(value: list[list[float]] | LatentsArtifact) -> Any:
    # pydantic's union serializer warns on a model that came through a plain validator.
    return value.model_dump(mode="json") if isinstance(value, LatentsArtifact) else value


LatentsSource = Annotated[
    list[list[float]] | LatentsArtifact,
    PlainSerializer(_plain_latents),
    PlainValidator(
        _vectors_or_artifact,
        json_schema_input_type=Annotated[
            list[LatentVector], Field(min_length=1, max_length=MAX_SEEDS)
        ]
        | LatentsArtifact,
    ),
]

InterpolationMethod = Literal["lerp", "slerp"]
# Where a path or an inversion moves: the prior's z, or stylegan2's intermediate w.
LatentSpace = Literal["z", "w"]


class InterpolationSpec(StrictModel):
    """A path through two or more latents, drawn as one row (a strip) and as a GIF.

    Give `from_seed` and `to_seed` (two seeds), or `points`: two or more seeds or vectors in
    the order the path visits them. Each leg between neighbouring points has `steps` images,
    both ends included, and legs share their ends, so k points make (k - 1)(steps - 1) + 1
    images (two points: `steps`), at most 64.

    `method`: `lerp` walks the straight line, `slerp` the great circle through the two ends
    (about the origin), keeping the norm between theirs. None picks slerp for a Gaussian prior
    and lerp for a uniform one (the prior is the checkpoint's, so this is settled when the job
    runs). A Gaussian latent lies near the shell of radius √dim, and lerp's midpoints fall
    well inside it, where training never drew latents; slerp stays on the shell. A uniform
    latent lies in the cube [-1, 1]^dim, which is no sphere: for ends of equal norm slerp's
    midpoint is lerp's scaled up by 1 / cos(θ/2) (√2 for orthogonal ends), which pushes
    coordinates past ±1, out of the cube the generator was trained on, whereas the cube is
    convex and holds every straight path between two of its points. So lerp is the uniform
    default; slerp remains available there.

    `classes` (a conditional model): one per point; each leg mixes the class embeddings of
    its ends linearly in step with the latents (t = 0, 1: the pure classes). The same seed
    at both ends moves only the class; a sampling spec's `classes: 7` holds it fixed.

    `space` (stylegan2 only for `w`): `z` (the default) walks the prior's latents; `w` maps
    the points to stylegan2's intermediate latents w and walks between those (`method`: lerp
    when not given, as StyleGAN does), so each image is drawn from its w and `latents.npy`
    holds the w path. A source job of another family refuses `w` (spec.interpolation.space).
    """

    from_seed: Seed | None = None
    to_seed: Seed | None = None
    points: Annotated[
        list[LatentPoint] | None, Field(min_length=2, max_length=MAX_INTERPOLATION_STEPS)
    ] = None
    steps: Annotated[StrictInt, Field(ge=MIN_INTERPOLATION_STEPS, le=MAX_INTERPOLATION_STEPS)]
    method: InterpolationMethod | None = None
    classes: Annotated[
        list[ClassId] | None, Field(min_length=2, max_length=MAX_INTERPOLATION_STEPS)
    ] = None
    space: LatentSpace | None = None

    @model_serializer(mode="wrap")
    def _space_only_when_given(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """`space` left unset is left out, so older specs' JSON stays what it was."""
        fields: dict[str, Any] = handler(self)
        if self.space is None:
            fields.pop("space", None)
        return fields

    @model_validator(mode="after")
    def _two_seeds_or_points(self) -> InterpolationSpec:
        if self.points is not None:
            if self.from_seed is not None or self.to_seed is not None:
                raise ValueError("points: give points, or from_seed and to_seed, not both")
        elif self.from_seed is None:
            raise ValueError("from_seed: give from_seed and to_seed, or points")
        elif self.to_seed is None:
            raise ValueError("to_seed: give from_seed and to_seed, or points")
        if self.image_count > MAX_INTERPOLATION_STEPS:
            raise ValueError(
                f"steps: {len(self.path_points)} points with {self.steps} steps a leg make "
                f"{self.image_count} images; one row holds at most {MAX_INTERPOLATION_STEPS}"
            )
        if self.classes is not None and len(self.classes) != len(self.path_points):
            raise ValueError(
                f"classes: one class per point of the path: {len(self.path_points)} points, "
                f"{len(self.classes)} classes"
            )
        return self

    @property
    def path_points(self) -> list[int | list[float]]:
        """The seeds or vectors the path visits, in order."""
        if self.points is not None:
            return list(self.points)
        return [self.from_seed or 0, self.to_seed or 0]

    @property
    def image_count(self) -> int:
        return (len(self.path_points) - 1) * (self.steps - 1) + 1


class NeighbourhoodSpec(StrictModel):
    """Images around a centre latent z: for each radius r, `count` latents z + r·u, u a unit
    direction drawn uniformly on the sphere (normalised Gaussian draws from `seed`, so the same
    spec gives the same latents). The same `count` directions serve every radius, so a column
    of the grid walks outwards along one direction.

    Drawn as one row per radius (in the order given), the centre first in each row; and
    `neighbourhood.json` / `neighbourhood.png` give the mean distance of each radius' images
    from the centre image: RMS over pixels in 8-bit levels (0-255) for images, Euclidean for
    points. Truncation ψ applies to the finished latents, ψ·(z + r·u).
    """

    centre: LatentPoint
    radii: Annotated[
        list[Annotated[StrictFloat, Field(gt=0, le=MAX_RADIUS)]],
        Field(min_length=1, max_length=MAX_RADII),
    ]
    count: Annotated[StrictInt, Field(ge=1, le=MAX_NEIGHBOURS)] = 8
    seed: Seed = 0

    @property
    def image_count(self) -> int:
        return len(self.radii) * (self.count + 1)


class ArithmeticTerm(StrictModel):
    """One term of a latent sum: `weight` times a latent, which is exactly one of `seed`,
    `latent` (a vector) or `seeds` (the mean of their latents, e.g. several images sharing an
    attribute; note the mean of n Gaussian latents has a norm about √(dim / n))."""

    seed: Seed | None = None
    latent: LatentVector | None = None
    seeds: Annotated[list[Seed] | None, Field(min_length=1, max_length=MAX_SEEDS)] = None
    weight: Annotated[FiniteFloat, Field(ge=-MAX_WEIGHT, le=MAX_WEIGHT)] = 1.0

    @model_validator(mode="after")
    def _one_latent(self) -> ArithmeticTerm:
        given = [name for name in ("seed", "latent", "seeds") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of seed, latent (a vector) or seeds (their mean latent)"
            )
        return self


Arithmetic = Annotated[list[ArithmeticTerm], Field(min_length=1, max_length=MAX_TERMS)]


# The fields of a sampling spec that each choose a mode; a spec gives exactly one of them.
SAMPLING_MODES = ("seeds", "latents", "interpolation", "neighbourhood", "arithmetic", "invert")
SamplingMode = Literal[
    "seeds", "latents", "interpolation", "neighbourhood", "arithmetic", "invert", "export"
]


class SampleSpec(StrictModel):
    """Images from a trained generator. The one mode field given says what to draw:

    - `seeds`: one image per seed, in the order given, as a square-ish grid;
    - `latents`: one image per explicit latent, a list of vectors or an `.npy` artifact of
      one of your jobs (`{"job_id": ..., "name": "latents.npy"}`), drawn as `seeds` draws;
    - `interpolation`: a path through two or more seeds or vectors, one row, and a GIF;
    - `neighbourhood`: a centre and its neighbours at several radii, with the distances;
    - `arithmetic`: a weighted sum of latents; each term's image, then the result's;
    - `invert`: the latents of given images (GAN inversion, shared/specs/inversion.py): the
      images and their reconstructions side by side, and the distances.

    Every mode writes `grid.png` and `latents.npy` (exactly the latents drawn, in the grid's
    order). `truncation` ψ in (0, 1] shrinks every latent of every mode towards the origin
    (z ↦ ψ·z) just before it is drawn; None (or 1) leaves latents as they are. A stylegan2
    generator truncates in W instead, towards its tracked mean w (w ↦ w_avg + ψ·(w - w_avg)),
    and its `latents.npy` holds the z (or w) before truncation.

    A conditional model (`model.conditional`) draws each image of a class: `classes` is one
    class for every image (an interpolation, neighbourhood or arithmetic then holds the class
    fixed while its latents move) or a list, one class per image in the grid's order; an
    interpolation may instead move between classes (`interpolation.classes`);
    `class_grid` lists classes to draw as rows, each row the images `seeds` or `latents` ask
    for (so a column keeps its latent and changes its class). Without either, classes come in
    turn (0, 1, 2, ...). The classes must exist in the model: checked when the job runs.

    `export: true` also writes the generator for use outside ganforge (the weight average when
    the checkpoint has one): `generator.safetensors`, `generator.torchscript.pt` and the card
    `generator.json`; with no mode field it writes only those.
    """

    job_id: Annotated[str, Field(min_length=1, max_length=64)]
    # None: the latest checkpoint of that job.
    step: Annotated[StrictInt | None, Field(ge=0)] = None
    seeds: Annotated[list[Seed] | None, Field(min_length=1)] = None
    latents: LatentsSource | None = None
    interpolation: InterpolationSpec | None = None
    neighbourhood: NeighbourhoodSpec | None = None
    arithmetic: Arithmetic | None = None
    invert: InversionSpec | None = None
    truncation: Annotated[StrictFloat | None, Field(gt=0, le=1)] = None
    classes: ClassChoice | None = None
    class_grid: Annotated[list[ClassId], Field(min_length=1, max_length=MAX_CLASS + 1)] | None = (
        None
    )
    export: StrictBool = False
    resources: ResourceSpec = ResourceSpec()

    @field_validator("seeds")
    @classmethod
    def _not_too_many(cls, seeds: list[int] | None) -> list[int] | None:
        if seeds is not None and len(seeds) > MAX_SEED_IMAGES:
            raise ValueError(f"at most {MAX_SEED_IMAGES} seeds per sampling job, got {len(seeds)}")
        return seeds

    @model_validator(mode="after")
    def _one_mode(self) -> SampleSpec:
        given = [name for name in SAMPLING_MODES if getattr(self, name) is not None]
        if len(given) > 1 or (not given and not self.export):
            raise ValueError(
                "give exactly one of seeds (a list of seeds, one image each), latents (vectors "
                "or an .npy artifact), interpolation (from_seed and to_seed, or points), "
                "neighbourhood, arithmetic or invert (images to find the latents of); or none "
                "of them with export: true"
            )
        return self

    @model_validator(mode="after")
    def _classes_fit_the_images(self) -> SampleSpec:
        if self.class_grid is not None:
            if self.classes is not None:
                raise ValueError("class_grid: give classes or class_grid, not both")
            if self.mode not in ("seeds", "latents"):
                raise ValueError(
                    f"class_grid: draws the rows of seeds or latents, not of {self.mode}"
                )
            count = self.image_count
            if count is not None and count > MAX_SEED_IMAGES:
                raise ValueError(
                    f"class_grid: {len(self.class_grid)} rows of {count // len(self.class_grid)} "
                    f"images make {count}; a job draws at most {MAX_SEED_IMAGES}"
                )
        if self.classes is not None and self.interpolation and self.interpolation.classes:
            raise ValueError("classes: give classes or interpolation.classes, not both")
        if self.classes is not None and self.mode in ("invert", "export"):
            raise ValueError(f"classes: {self.mode} draws no new images to give a class")
        if isinstance(self.classes, list):
            count = self.image_count
            if count is not None and len(self.classes) != count:
                raise ValueError(
                    f"classes: one class per image: {count} images, {len(self.classes)} classes "
                    "(or give one class, a number, for every image)"
                )
        return self

    @property
    def mode(self) -> SamplingMode:
        """The mode field given, or `export` for a spec that only exports."""
        given = [name for name in SAMPLING_MODES if getattr(self, name) is not None]
        return given[0] if given else "export"  # type: ignore[return-value]

    @property
    def asked_classes(self) -> tuple[str, int | list[int]] | None:
        """The field asking for classes and what it asks; None: classes come in turn."""
        if self.class_grid is not None:
            return "class_grid", self.class_grid
        if self.interpolation is not None and self.interpolation.classes is not None:
            return "interpolation.classes", self.interpolation.classes
        return None if self.classes is None else ("classes", self.classes)

    @property
    def latents_artifact(self) -> LatentsArtifact | None:
        """The `.npy` artifact the latents come from, when they come from one."""
        return self.latents if isinstance(self.latents, LatentsArtifact) else None

    @property
    def image_count(self) -> int | None:
        """How many images the job draws; None while they are in an unread artifact or
        dataset."""
        if self.interpolation is not None:
            return self.interpolation.image_count
        if self.neighbourhood is not None:
            return self.neighbourhood.image_count
        if self.arithmetic is not None:
            return len(self.arithmetic) + 1
        if self.invert is not None:
            return self.invert.image_count
        if isinstance(self.latents, LatentsArtifact):
            return None
        rows = len(self.class_grid) if self.class_grid is not None else 1
        return rows * len(self.latents or self.seeds or [])
