"""The one error of reading training data: what is wrong, in words the data's owner can act on."""

from __future__ import annotations


class DataFileError(ValueError):
    """A data file is missing, malformed or unusable; the message names the file and why.

    Defined here, the lowest layer (opening files, `confine`, raises it too); callers import
    it from `shared.datafiles.formats`."""
