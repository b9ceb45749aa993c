"""Writing an image folder or archive as tar shards with an index (`shard_index`), once, so
that a worker can stream it instead of reading it whole into memory.

Images keep the bytes they came with (a PNG stays that PNG, a JPEG is not decoded and saved
again, which would lose quality), in the order `images.image_members` lists them, the order
an unsharded archive trains in. Labels follow the rule `worker/gan/class_labels.py` applies
to an archive (the class sub-folder each image lies in), so a sharded dataset trains a
conditional model on the same classes as the archive it came from.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal, cast

from shared.datafiles.errors import DataFileError
from shared.datafiles.images import GREY_MODES, ImageMember, image_members, open_image
from shared.datafiles.shard_index import (
    INDEX_NAME,
    ShardEntry,
    ShardIndex,
    member_stem,
    shard_name,
)
from shared.specs.model import MAX_CLASSES, MIN_CLASSES

# A shard closes once it holds this many images or bytes, whichever comes first: 64 MiB is
# a few seconds of a worker's download and a few thousand 64 px PNGs, large enough that
# opening a shard (reading its tar headers) costs little per image, small enough that a
# shuffle window of a few shards stays a few hundred MB on disk.
IMAGES_PER_SHARD = 4096
SHARD_BYTES = 64 * 1024 * 1024
# Member suffixes as written: JPEG's two spellings become one.
_SUFFIXES = {".png": ".png", ".jpg": ".jpg", ".jpeg": ".jpg"}


def folder_classes(names: Sequence[str], label: str) -> tuple[list[str], list[int]] | None:
    """(class names, each image's class number) from the sub-folder each image name lies in
    (`3/0001.png` is class "3"), classes numbered in sorted order of their names, as
    torchvision's ImageFolder does. None unless every image lies in a sub-folder and there
    are at least two; DataFileError past MAX_CLASSES."""
    folders = [str(PurePosixPath(name).parent) for name in names]
    if any(folder == "." for folder in folders):
        return None
    classes = sorted(set(folders), key=PurePosixPath)  # as paths: the archive loader's order
    if len(classes) < MIN_CLASSES:
        return None
    if len(classes) > MAX_CLASSES:
        raise DataFileError(f"{label}: {len(classes)} class folders, more than {MAX_CLASSES}")
    number = {name: position for position, name in enumerate(classes)}
    return classes, [number[folder] for folder in folders]


class ShardWriter:
    """Tar shards in `folder`, each closed at `images_per_shard` images or `shard_bytes`;
    `entries` lists those closed. `add` images with their dataset-wide stems in order, then
    `close_shard` once; the index is the caller's to write (`write_shards` does)."""

    def __init__(self, folder: Path, images_per_shard: int, shard_bytes: int) -> None:
        self.folder, self.images_per_shard, self.shard_bytes = folder, images_per_shard, shard_bytes
        self.entries: list[ShardEntry] = []
        self._tar: tarfile.TarFile | None = None
        self._file: _HashingFile | None = None
        self._count = self._bytes = 0

    def add(self, stem: str, suffix: str, data: bytes, class_number: int | None) -> None:
        if self._tar is None:
            # Open across calls by design: closed by close_shard.
            path = self.folder / shard_name(len(self.entries))
            self._file = _HashingFile(path.open("wb"))
            # tarfile's stubs ask for a whole file; writing, it calls `write` and `tell` only.
            writer = cast(BinaryIO, self._file)
            self._tar = tarfile.open(fileobj=writer, mode="w")  # noqa: SIM115
        self._member(f"{stem}{suffix}", data)
        if class_number is not None:
            self._member(f"{stem}.cls", str(class_number).encode())
        self._count += 1
        self._bytes += len(data)
        if self._count >= self.images_per_shard or self._bytes >= self.shard_bytes:
            self.close_shard()

    def _member(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o444  # mtime 0: the same images give the same bytes
        assert self._tar is not None
        self._tar.addfile(info, io.BytesIO(data))

    def close_shard(self) -> None:
        if self._tar is None or self._file is None:
            return
        self._tar.close()  # its end blocks go through the hash too
        self._file.file.close()
        digest = self._file.digest.hexdigest()
        name = shard_name(len(self.entries))
        self.entries.append(ShardEntry(name=name, count=self._count, sha256=digest))
        self._tar, self._file, self._count, self._bytes = None, None, 0, 0


class _HashingFile:
    """A file written through, hashing every byte on the way: a shard's SHA-256 as tarfile
    writes it, with no second read of the shard (tarfile needs `write` and `tell` only)."""

    def __init__(self, file: BinaryIO) -> None:
        self.file, self.digest = file, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.file.write(data)

    def tell(self) -> int:
        return self.file.tell()


def write_shards(
    source: Path,
    out: Path,
    label: str | None = None,
    *,
    images_per_shard: int = IMAGES_PER_SHARD,
    shard_bytes: int = SHARD_BYTES,
) -> ShardIndex:
    """Write the images of `source` (a folder, .zip or .tar[.gz]) as shards and their index
    into folder `out`; return the index. DataFileError (naming `label`) as the archive
    readers raise it. Two passes over `source`: the class numbers need every folder name
    before the first label is written, and memory holds one image at a time."""
    label = label or source.name
    classes = folder_classes([member.name for member in image_members(source, label)], label)
    out.mkdir(parents=True, exist_ok=True)
    writer = ShardWriter(out, images_per_shard, shard_bytes)
    sizes: Counter[tuple[int, int]] = Counter()
    grey, count = True, 0
    for position, member in enumerate(image_members(source, label)):
        height, width, mode = _header(member, label)
        sizes[(height, width)] += 1
        grey = grey and mode in GREY_MODES
        number = None if classes is None else classes[1][position]
        writer.add(member_stem(position), _suffix(member.name), member.data, number)
        count = position + 1
    writer.close_shard()
    if classes is not None and count != len(classes[1]):
        raise DataFileError(f"{label}: changed while it was being sharded")
    channels: Literal[1, 3] = 1 if grey else 3
    (height, width), *others = sizes
    index = ShardIndex(
        format="ganforge-shards",
        version=1,
        count=count,
        shards=writer.entries,
        shape=None if others else (channels, height, width),
        channels=channels,
        classes=None if classes is None else classes[0],
    )
    (out / INDEX_NAME).write_text(index.to_json())
    return index


def shard_files(folder: Path, index: ShardIndex) -> list[Path]:
    """The files of a sharded dataset in `folder`: its index, then its shards."""
    return [folder / INDEX_NAME, *(folder / entry.name for entry in index.shards)]


def _header(member: ImageMember, label: str) -> tuple[int, int, str]:
    """(height, width, Pillow mode) from the image's header, without decoding its pixels."""
    with open_image(member, label) as opened:
        return opened.height, opened.width, opened.mode


def _suffix(name: str) -> str:
    return _SUFFIXES[PurePosixPath(name).suffix.lower()]
