"""The index of a sharded image dataset: which tar shards it has, how many images each holds,
their shape and their classes. Written once beside the shards (`shards.write_shards`), read
by the worker before it streams them (worker/gan/shard_stream.py).

A dataset stored as shards is a folder (or store prefix) holding `shards.json` and the tar
files it names. Each shard holds webdataset-style members in name order: `NNNNNNNNN.png`
(or `.jpg`, the image's bytes as uploaded) and, for labelled data, `NNNNNNNNN.cls` (the
class number as ASCII digits), NNNNNNNNN being the image's position in the whole dataset.

The index is data a job may be handed from a worker folder, so everything in it is checked:
shard names are plain `shard-NNNNNN.tar` (no path climbs out of the folder), counts add up,
shapes are images. A bad index is a `ShardIndexError` naming the file and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from shared.datafiles.confine import open_file
from shared.datafiles.errors import DataFileError
from shared.specs.model import MAX_CLASSES

INDEX_NAME = "shards.json"
INDEX_FORMAT = "ganforge-shards"
SHARD_NAME_PATTERN = r"^shard-[0-9]{6}\.tar$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
# An index lists shard names and counts only: a million shards would be under 100 MB of
# JSON; anything past 16 MiB is not an index we wrote.
MAX_INDEX_BYTES = 16 * 1024 * 1024
# Member stems are the image's position in the dataset, this many digits (a billion images).
STEM_DIGITS = 9


class ShardIndexError(DataFileError):
    """A shard index (or a shard) that does not say what a sharded dataset must."""


def shard_name(number: int) -> str:
    """The file name of shard `number` (from 0)."""
    return f"shard-{number:06d}.tar"


def member_stem(position: int) -> str:
    """The member name stem of the image at `position` in the dataset."""
    return f"{position:0{STEM_DIGITS}d}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShardEntry(_Strict):
    """One shard: its file name, how many images it holds, and the SHA-256 of its bytes as
    written (checked wherever a shard is fetched, so a shard damaged or replaced in the store
    never trains; None in indexes written before the digest was kept)."""

    name: Annotated[str, Field(pattern=SHARD_NAME_PATTERN)]
    count: Annotated[StrictInt, Field(ge=1)]
    sha256: Annotated[str, Field(pattern=SHA256_PATTERN)] | None = None


class ShardIndex(_Strict):
    """What `shards.json` says. `shape` is [channels, height, width] when every image has one
    size (None when sizes differ: a job must then resize); `channels` 1 when every image is
    grey, else 3; `classes` the class names, numbered in list order, or None (no labels)."""

    format: Literal["ganforge-shards"]
    version: Literal[1]
    count: Annotated[StrictInt, Field(ge=1)]
    shards: Annotated[list[ShardEntry], Field(min_length=1)]
    shape: (
        tuple[Literal[1, 3], Annotated[StrictInt, Field(ge=1)], Annotated[StrictInt, Field(ge=1)]]
        | None
    )
    channels: Literal[1, 3]
    classes: Annotated[list[str], Field(min_length=2, max_length=MAX_CLASSES)] | None = None

    @model_validator(mode="after")
    def _counts_add_up(self) -> ShardIndex:
        total = sum(entry.count for entry in self.shards)
        if total != self.count:
            raise ValueError(f"count: {self.count}, but the shards hold {total} images")
        names = [entry.name for entry in self.shards]
        if len(set(names)) != len(names):
            raise ValueError("shards: a shard is named twice")
        if self.shape is not None and self.shape[0] != self.channels:
            raise ValueError(f"shape: {list(self.shape)} disagrees with channels {self.channels}")
        return self

    @property
    def counts(self) -> list[int]:
        """Images per shard, in index order."""
        return [entry.count for entry in self.shards]

    def to_json(self) -> str:
        return self.model_dump_json()


def is_sharded(folder: Path) -> bool:
    """Whether `folder` holds a sharded dataset (its index)."""
    return folder.is_dir() and (folder / INDEX_NAME).is_file()


def read_index(folder: Path, label: str | None = None) -> ShardIndex:
    """The checked index of the sharded dataset in `folder`. ShardIndexError naming the file
    and the field at fault (e.g. `shards.json: shards.1.count: ...`)."""
    name = f"{label or folder.name}/{INDEX_NAME}"
    with open_file(folder / INDEX_NAME, name) as file:
        raw = file.read(MAX_INDEX_BYTES + 1)
    if len(raw) > MAX_INDEX_BYTES:
        raise ShardIndexError(f"{name}: more than {MAX_INDEX_BYTES} bytes; not a shard index")
    return parse_index(raw, name)


def parse_index(raw: bytes | str, name: str = INDEX_NAME) -> ShardIndex:
    """A shard index from its JSON text; ShardIndexError naming `name` and the field."""
    try:
        fields = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ShardIndexError(f"{name}: not JSON ({exc})") from None
    try:
        return ShardIndex.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(_problem(error["loc"], str(error["msg"])) for error in exc.errors())
        raise ShardIndexError(f"{name}: {problems}") from None


def _problem(location: tuple[int | str, ...], message: str) -> str:
    """One validation error as `field.path: message` (the checks across fields name their
    fields in their messages)."""
    message = message.removeprefix("Value error, ")
    return f"{'.'.join(str(part) for part in location)}: {message}" if location else message
