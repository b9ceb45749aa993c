"""Named failures of the GAN engine, each with a message a user can act on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from shared.datafiles.errors import DataFileError


class GanError(Exception):
    """Base class, so the worker can turn any engine failure into a failed job."""


class DataError(GanError):
    """Training data is missing or malformed; the message names the file and the problem."""


@contextmanager
def as_data_error() -> Iterator[None]:
    """shared.datafiles' errors (a data file's checks, shared with the API) as the engine's
    DataError, with the same message."""
    try:
        yield
    except DataFileError as exc:
        raise DataError(str(exc)) from None


class CheckpointError(GanError):
    """A checkpoint cannot be read, or does not fit the spec it is resumed with."""


class NonFiniteLossError(GanError):
    """A loss became NaN or infinite; the run cannot recover, so it stops and says when."""

    def __init__(self, step: int):
        self.step = step
        super().__init__(
            f"loss became NaN or infinite at step {step}: "
            "lower the learning rate or check the training data"
        )


class LatentsError(GanError):
    """Latents a sampling job gives do not fit its generator, or an `.npy` file of them cannot
    be read safely; the message names the field or file and what is wrong."""


class BundleError(GanError):
    """The networks of a custom model's code bundle cannot be built or do not fit the data;
    the message names the spec field, and the bundle's file and line where it went wrong."""


class ClassesError(GanError):
    """Classes a sampling job asks for do not fit its generator (an unconditional one, or a
    class it was not trained on); the message names the field."""


class SampleSizeError(GanError):
    """A sampling job asks for more pixels than a job may draw at its generator's image side
    (shared/specs/sample_size.py); the message names the field."""
