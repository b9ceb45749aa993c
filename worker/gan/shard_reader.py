"""Reading images and labels out of a sharded dataset's tar files by (shard, member) number.

A shard is opened once (its tar headers read, only each member's offset and size kept) and
its members then read by seeking: a batch of images from a few shards costs their bytes and
no more, and memory holds a few shards' offsets, never their images. Every member is checked
as the archive readers check theirs (regular files, size and pixel limits), since a worker
folder could hold any tar under the index's names.
"""

from __future__ import annotations

import tarfile
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import numpy as np

from shared.datafiles.confine import open_file, reading_within
from shared.datafiles.images import MAX_MEMBER_BYTES, ImageMember, decode_image, fit_image
from shared.datafiles.shard_index import ShardIndex, ShardIndexError

_IMAGE_SUFFIXES = (".png", ".jpg")
# Labels are ASCII digits: a few bytes; anything longer is not a label.
_MAX_LABEL_BYTES = 16
# A reader keeps this many shards open: a draw reads from one window of shards (see
# shard_order.SHUFFLE_SHARDS) and at most the next one.
OPEN_SHARDS = 8


@dataclass(frozen=True)
class _Member:
    name: str
    offset: int
    size: int


@dataclass
class _OpenShard:
    file: BinaryIO
    images: list[_Member]
    labels: list[_Member] | None


class ShardReader:
    """Images (fitted to `size` x `size`, `channels`) and labels of one sharded dataset.

    `roots` is the (data roots, spec field) confinement to open files under (from
    `confine.roots_in_force()` where the reader was made), or None."""

    def __init__(
        self,
        folder: Path,
        index: ShardIndex,
        size: int,
        channels: int,
        roots: tuple[list[Path], str] | None = None,
    ) -> None:
        self.folder, self.index, self.size, self.channels = folder, index, size, channels
        self.roots = roots
        self._open: OrderedDict[int, _OpenShard] = OrderedDict()

    def images(self, pairs: list[tuple[int, int]]) -> np.ndarray:
        """uint8 [B, C, H, W] of the (shard, member) pairs, in their order."""
        fitted = [self._image(shard, member) for shard, member in pairs]
        return np.ascontiguousarray(np.stack(fitted).transpose(0, 3, 1, 2))

    def labels(self, pairs: list[tuple[int, int]]) -> np.ndarray:
        """int64 [B] class numbers of the pairs; ShardIndexError when the data has none."""
        return np.array([self._label(shard, member) for shard, member in pairs], dtype=np.int64)

    def close(self) -> None:
        for shard in self._open.values():
            shard.file.close()
        self._open.clear()

    def _image(self, shard: int, member: int) -> np.ndarray:
        found = self._shard(shard).images[member]
        data = self._read(shard, found)
        image = decode_image(ImageMember(found.name, data), self._label_of(shard))
        return fit_image(image, self.size, self.channels)

    def _label(self, shard: int, member: int) -> int:
        labels, classes = self._shard(shard).labels, self.index.classes
        if labels is None or classes is None:
            raise ShardIndexError(f"{self._label_of(shard)}: holds no labels (.cls members)")
        text = self._read(shard, labels[member]).strip()
        if not text.isdigit() or int(text) >= len(classes):
            raise ShardIndexError(
                f"{self._label_of(shard)}: member {labels[member].name!r} is not a class "
                f"number 0-{len(classes) - 1}"
            )
        return int(text)

    def _read(self, shard: int, member: _Member) -> bytes:
        file = self._shard(shard).file
        file.seek(member.offset)
        data = file.read(member.size)
        if len(data) != member.size:
            raise ShardIndexError(f"{self._label_of(shard)}: member {member.name!r} is cut short")
        return data

    def _shard(self, shard: int) -> _OpenShard:
        if shard in self._open:
            self._open.move_to_end(shard)
            return self._open[shard]
        while len(self._open) >= OPEN_SHARDS:
            self._open.popitem(last=False)[1].file.close()
        self._open[shard] = self._scan(shard)
        return self._open[shard]

    def _scan(self, shard: int) -> _OpenShard:
        """Open shard `shard` and list its members; checked against the index."""
        label = self._label_of(shard)
        with self._confined():
            file = open_file(self.folder / self.index.shards[shard].name, label)
        try:
            images, labels = _members(file, label)
        except BaseException:
            file.close()
            raise
        expected = self.index.shards[shard].count
        if len(images) != expected:
            file.close()
            raise ShardIndexError(f"{label}: holds {len(images)} images, the index says {expected}")
        wants_labels = self.index.classes is not None
        if wants_labels and [m.name.split(".")[0] for m in labels] != [
            m.name.split(".")[0] for m in images
        ]:
            file.close()
            raise ShardIndexError(f"{label}: its .cls members do not match its images one to one")
        return _OpenShard(file, images, labels if wants_labels else None)

    def _label_of(self, shard: int) -> str:
        return f"{self.folder.name}/{self.index.shards[shard].name}"

    @contextmanager
    def _confined(self) -> Iterator[None]:
        if self.roots is None:
            yield
            return
        with reading_within(*self.roots):
            yield


def _members(file: BinaryIO, label: str) -> tuple[list[_Member], list[_Member]]:
    """A shard's image and label members, each sorted by name; ShardIndexError for a tar that
    is not one (compressed, links, directories, oversized members). Only offsets outlive
    the scan: the TarFile and its member list go with the `with`."""
    images: list[_Member] = []
    labels: list[_Member] = []
    try:
        with tarfile.open(fileobj=file, mode="r:") as archive:
            while (info := archive.next()) is not None:
                suffix = PurePosixPath(info.name).suffix.lower()
                if not info.isfile():
                    raise ShardIndexError(f"{label}: member {info.name!r} is not a file")
                if info.size > MAX_MEMBER_BYTES:
                    raise ShardIndexError(f"{label}: member {info.name!r} is too large")
                found = _Member(info.name, info.offset_data, info.size)
                if suffix in _IMAGE_SUFFIXES:
                    images.append(found)
                elif suffix == ".cls" and info.size <= _MAX_LABEL_BYTES:
                    labels.append(found)
                else:
                    raise ShardIndexError(f"{label}: member {info.name!r} is not an image or label")
    except tarfile.TarError as exc:
        raise ShardIndexError(f"{label}: not an uncompressed tar shard ({exc})") from None
    return sorted(images, key=_name), sorted(labels, key=_name)


def _name(member: _Member) -> str:
    return member.name
