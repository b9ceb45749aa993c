"""Whether given latents fit a generator, without a database: the vectors a sampling spec
gives, the shape and dtype of a latents array, and an `.npy` header read from its first bytes.

Used at submission (shared/jobs/sample_inputs.py, against the source job's `latent.dim`) and by the
worker when it reads the latents (worker/gan/latents.py, against the checkpoint's).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

from shared.specs.sample import MAX_LATENT_DIM, MAX_SEEDS, SampleSpec

# Float types a latents array may have; they are drawn as float32, the generators' type.
LATENT_DTYPES = ("float16", "float32", "float64")
# The largest .npy that can hold valid latents: MAX_SEEDS float64 vectors of the largest
# dimension (32 MiB), plus room for the header. Anything bigger is refused unread.
MAX_LATENTS_NPY_BYTES = MAX_SEEDS * MAX_LATENT_DIM * 8 + 65_536
# An .npy header (format 1.0) is at most 64 KiB; its magic and length come first.
NPY_HEADER_BYTES = 65_536 + 10

# Why an array of Python objects (or any pickle) is refused: unpickling runs code.
PICKLED_LATENTS = "holds pickled Python objects, which are never loaded; save floats (numpy.save)"

Problem = dict[str, str]


def latent_vectors(spec: SampleSpec) -> Iterator[tuple[str, list[float]]]:
    """Every latent vector the spec gives, with its path (`spec.latents.3`)."""
    if isinstance(spec.latents, list):
        for index, vector in enumerate(spec.latents):
            yield f"spec.latents.{index}", vector
    if spec.interpolation is not None and spec.interpolation.points is not None:
        for index, point in enumerate(spec.interpolation.points):
            if isinstance(point, list):
                yield f"spec.interpolation.points.{index}", point
    if spec.neighbourhood is not None and isinstance(spec.neighbourhood.centre, list):
        yield "spec.neighbourhood.centre", spec.neighbourhood.centre
    for index, term in enumerate(spec.arithmetic or []):
        if term.latent is not None:
            yield f"spec.arithmetic.{index}.latent", term.latent


def vector_problems(spec: SampleSpec, dim: int) -> list[Problem]:
    """A problem for each vector whose length is not the generator's latent dimension."""
    return [
        {"path": path, "message": f"has {len(vector)} numbers; the generator takes {dim}"}
        for path, vector in latent_vectors(spec)
        if len(vector) != dim
    ]


def latents_array_problem(shape: tuple[int, ...], dtype: np.dtype[Any], dim: int) -> str | None:
    """Why an array of this shape and dtype cannot be the latents of a generator taking
    latents of `dim` numbers, or None when it can."""
    if dtype.hasobject:
        return PICKLED_LATENTS
    if dtype.name not in LATENT_DTYPES:
        return f"has dtype {dtype.name}; latents are {', '.join(LATENT_DTYPES)}"
    if len(shape) != 2:
        return f"has shape {list(shape)}; latents are [n, {dim}]"
    count, width = shape
    if width != dim:
        return f"holds latents of {width} numbers; the generator takes {dim}"
    if not 1 <= count <= MAX_SEEDS:
        return f"holds {count} latents; a sampling job draws 1 to {MAX_SEEDS}"
    return None


def read_npy_header(head: bytes) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """The shape and dtype in an .npy file's header, from its first NPY_HEADER_BYTES (fewer
    when the file is shorter; the rest need never be read). ValueError when it is not an
    .npy file numpy 1.0/2.0 wrote."""
    file = io.BytesIO(head)
    try:
        version = npy_format.read_magic(file)
        readers = {
            (1, 0): npy_format.read_array_header_1_0,
            (2, 0): npy_format.read_array_header_2_0,
        }
        if version not in readers:
            raise ValueError(f"npy format {version} is not read here; save with numpy.save")
        shape, _fortran_order, dtype = readers[version](file)
    except (ValueError, EOFError, SyntaxError) as exc:
        raise ValueError(f"not a readable .npy file ({exc})") from None
    return tuple(shape), dtype
