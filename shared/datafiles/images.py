"""Images in folders and archives, read safely with Pillow: the image half of `datafiles`.

Archive members are listed without extracting anything to disk; names that climb out of the
archive, links and oversized members are refused, other files (README, hidden files, macOS
`__MACOSX/`) skipped. Images decode to grey (L) or RGB and are fitted (center crop, resize,
channel conversion) into one uint8 array [N, H, W, C].
"""

from __future__ import annotations

import copy
import io
import os
import tarfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

import numpy as np
from PIL import Image, UnidentifiedImageError

from shared.datafiles.confine import folder_files, open_file
from shared.datafiles.errors import DataFileError as DataFileError
from shared.specs.data import IMAGE_SIZES_TEXT

# What counts as a training image in a folder or archive, by file extension.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
# One member larger than this is not a training image but a mistake (or a bomb): 64 MiB is
# hundreds of times a 64 px photo.
MAX_MEMBER_BYTES = 64 * 1024 * 1024
# Pixels of one decoded image: 4096² covers any camera photo someone might resize; Pillow's
# own bomb limit is larger and only warns below twice its value.
MAX_IMAGE_PIXELS = 4096 * 4096
# What one data file may expand to (an idx file's pixels, an archive's members together):
# 4 GiB is 5 million MNIST digits or 300,000 64 px colour images, far beyond a test set,
# and a compressed file claiming more is refused before anything is expanded.
MAX_DECOMPRESSED_BYTES = 4 * 1024**3
# Members are decompressed this much at a time, and counted as they come.
_CHUNK = 1024 * 1024
# Members of one archive: a 100,000-image zip is checked in well under a minute; one with
# more files is refused from its directory alone (pack the images into an .npz instead).
MAX_ARCHIVE_MEMBERS = 100_000
# ITU-R 601-2 luma, what Pillow's convert("L") uses: npz colour images go grey the same way.
_LUMA = np.array([0.299, 0.587, 0.114])
# Pillow modes read as grey; every other 8-bit mode (P, RGBA, CMYK, ...) is read as RGB.
GREY_MODES = frozenset({"1", "L", "LA"})
_ARCHIVE_SUFFIXES = {".zip": "zip", ".tar": "tar", ".tgz": "tar", ".tar.gz": "tar"}


# --- images in folders and archives ------------------------------------------------------


def archive_format(name: str) -> str | None:
    """zip or tar (also .tar.gz, .tgz) by file name; None for anything else."""
    lower = name.lower()
    return next((fmt for suffix, fmt in _ARCHIVE_SUFFIXES.items() if lower.endswith(suffix)), None)


@dataclass(frozen=True)
class ImageMember:
    """One image file inside an archive or folder, read on demand."""

    name: str
    data: bytes


def image_members(path: Path, label: str | None = None) -> Iterator[ImageMember]:
    """The PNG/JPEG files of a folder, zip or tar, sorted by name, as bytes.

    Non-image files are skipped. Member names that climb out of the archive (`..`, absolute
    paths), links and oversized members are DataFileErrors, as is an archive with no images.
    """
    label = label or path.name
    fmt = "folder" if path.is_dir() else archive_format(label)
    if fmt == "folder":
        members = _folder_members(path, label)
    elif fmt == "zip":
        members = _zip_members(path, label)
    elif fmt == "tar":
        members = _tar_members(path, label)
    else:
        raise DataFileError(f"{label}: not a folder, .zip or .tar of images")
    found = 0
    for member in members:
        found += 1
        yield member
    if not found:
        raise DataFileError(f"{label}: holds no PNG or JPEG images")


def _is_image_name(name: str, label: str) -> bool:
    """Whether an archive member is a training image; DataFileError for unsafe names."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or name[1:3] in (":/", ":\\"):
        raise DataFileError(f"{label}: member {name!r} has an unsafe path (absolute or '..')")
    hidden = any(part.startswith(".") or part == "__MACOSX" for part in path.parts)
    return not hidden and path.suffix.lower() in IMAGE_SUFFIXES


def _check_archive(members: int, expanded: int, label: str) -> None:
    """Refuse, from its directory alone, an archive with too many members or too many bytes
    once expanded (zip and tar directories state both). A directory may lie: members are
    then read by `_read_member`, which counts what they really expand to."""
    if members > MAX_ARCHIVE_MEMBERS:
        raise DataFileError(
            f"{label}: {members} members, more than {MAX_ARCHIVE_MEMBERS}; pack the images "
            "into an .npz instead"
        )
    if expanded > MAX_DECOMPRESSED_BYTES:
        raise DataFileError(
            f"{label}: expands to {expanded} bytes, more than {MAX_DECOMPRESSED_BYTES}"
        )


def _check_member_size(name: str, size: int, label: str) -> None:
    if size > MAX_MEMBER_BYTES:
        raise DataFileError(
            f"{label}: member {name!r} is {size} bytes, more than {MAX_MEMBER_BYTES} for an image"
        )


class _ExpansionBudget:
    """What an archive's members may still expand to, counted on the bytes they produce."""

    def __init__(self) -> None:
        self.left = MAX_DECOMPRESSED_BYTES

    def read(self, file: IO[bytes], name: str, label: str) -> bytes:
        """A member's bytes, decompressed one chunk at a time and refused as soon as they pass
        MAX_MEMBER_BYTES or the archive's budget: a member whose directory entry says 100
        bytes but which holds a gigabyte costs one chunk of memory, not the gigabyte (zipfile's
        `read()` of a whole member decompresses it in one call before it checks the size)."""
        cap = min(MAX_MEMBER_BYTES, self.left)
        chunks, size = [], 0
        while chunk := file.read(min(_CHUNK, cap + 1 - size)):
            size += len(chunk)
            if size > cap:
                limit = "the archive's limit of" if cap < MAX_MEMBER_BYTES else "an image's"
                raise DataFileError(
                    f"{label}: member {name!r} expands past {limit} {cap} bytes (its directory "
                    "entry says less)"
                )
            chunks.append(chunk)
        self.left -= size
        return b"".join(chunks)


def _folder_members(folder: Path, label: str) -> Iterator[ImageMember]:
    """A folder's images, each checked where it lies once opened (a member may be a link)."""
    for found in folder_files(folder, label):
        if _is_image_name(found.name, label):
            with found.open() as file:
                _check_member_size(found.name, os.fstat(file.fileno()).st_size, label)
                yield ImageMember(found.name, file.read())


# A zip member's general-purpose flag bit 0: encrypted (zipfile asks for a password).
_ENCRYPTED = 0x1


def _zip_members(path: Path, label: str) -> Iterator[ImageMember]:
    try:
        with open_file(path, label) as raw, zipfile.ZipFile(raw) as archive:
            infos = sorted(
                (i for i in archive.infolist() if not i.is_dir()), key=lambda i: i.filename
            )
            _check_archive(len(infos), sum(i.file_size for i in infos), label)
            wanted = [i for i in infos if _is_image_name(i.filename, label)]
            budget = _ExpansionBudget()
            for info in wanted:
                _check_member_size(info.filename, info.file_size, label)
                # zipfile stops at the declared size, so a member whose CRC covers only that
                # much would pass as a small image while its stream goes on: ask for one
                # byte more than declared, which only a member that lies can produce.
                # The CRC is checked here, on the declared bytes (zipfile would check it on
                # the one byte more, and call every honest member corrupt).
                if info.flag_bits & _ENCRYPTED:
                    raise DataFileError(f"{label}: member {info.filename!r} is encrypted")
                one_more = copy.copy(info)
                one_more.file_size = info.file_size + 1
                del one_more.CRC  # zipfile checks no CRC for an entry without one
                with archive.open(one_more) as file:
                    data = budget.read(file, info.filename, label)
                if len(data) > info.file_size:
                    raise DataFileError(
                        f"{label}: member {info.filename!r} holds more than the "
                        f"{info.file_size} bytes its directory entry says"
                    )
                if len(data) < info.file_size or zlib.crc32(data) != info.CRC:
                    raise DataFileError(
                        f"{label}: member {info.filename!r} is damaged (its bytes do not match "
                        "its directory entry's size and CRC-32)"
                    )
                yield ImageMember(info.filename, data)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise DataFileError(f"{label}: not a readable zip archive ({exc})") from exc


def _tar_members(path: Path, label: str) -> Iterator[ImageMember]:
    try:
        with open_file(path, label) as raw, tarfile.open(fileobj=raw, mode="r:*") as archive:
            infos = sorted((i for i in archive.getmembers() if not i.isdir()), key=lambda i: i.name)
            _check_archive(len(infos), sum(i.size for i in infos), label)
            budget = _ExpansionBudget()
            for info in infos:
                if not _is_image_name(info.name, label):
                    continue
                if not info.isfile():
                    raise DataFileError(f"{label}: member {info.name!r} is a link, not a file")
                _check_member_size(info.name, info.size, label)
                file = archive.extractfile(info)
                if file is None:
                    raise DataFileError(f"{label}: member {info.name!r} cannot be read")
                yield ImageMember(info.name, budget.read(file, info.name, label))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataFileError(f"{label}: not a readable tar archive ({exc})") from exc


@contextmanager
def open_image(member: ImageMember, label: str) -> Iterator[Image.Image]:
    """A member opened by Pillow, its size checked from its header before a pixel is decoded:
    a PNG of a few bytes can claim 60000x60000 and expand to gigabytes. Every failure, in
    the `with` block too, is a DataFileError naming the member. The one guard for both
    reading a member's header alone (`formats.inspect_data` without decoding) and decoding
    it (`decode_image`)."""
    try:
        with Image.open(io.BytesIO(member.data)) as opened:
            if opened.width * opened.height > MAX_IMAGE_PIXELS:
                raise DataFileError(
                    f"{label}: image {member.name!r} is {opened.width}x{opened.height}, more "
                    f"than {MAX_IMAGE_PIXELS} pixels"
                )
            yield opened
    except DataFileError:
        raise
    except Image.DecompressionBombError:
        raise DataFileError(
            f"{label}: image {member.name!r} claims more than {MAX_IMAGE_PIXELS} pixels"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataFileError(f"{label}: image {member.name!r} cannot be decoded ({exc})") from exc


def decode_image(member: ImageMember, label: str) -> Image.Image:
    """A member's pixels, decoded: mode L (grey) or RGB."""
    with open_image(member, label) as opened:
        if opened.mode in ("I", "I;16", "I;16B", "F"):
            raise DataFileError(
                f"{label}: image {member.name!r} has 16-bit or float pixels; save it as "
                "8-bit grey or RGB"
            )
        opened.load()
        return opened.convert("L" if opened.mode in GREY_MODES else "RGB")


def describe_sizes(sizes: dict[tuple[int, int], int]) -> str:
    """'28x28 (10 images), 32x32 (2 images)' for error messages."""
    return ", ".join(f"{w}x{h} ({n} images)" for (h, w), n in sorted(sizes.items()))


# --- turning images into one training array ---------------------------------------------


def fit_image(image: Image.Image, size: int | None, channels: int) -> np.ndarray:
    """One image as uint8 [size, size, channels]: center-cropped to a square and resized
    when `size` is given, converted to grey or RGB."""
    image = image.convert("L" if channels == 1 else "RGB")
    if size is not None and image.size != (size, size):
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[..., np.newaxis] if channels == 1 else pixels


def read_images(
    path: Path, label: str | None, size: int | None, channels: int | None
) -> np.ndarray:
    """Every image of a folder or archive as uint8 [N, H, W, C].

    `channels` None: 1 when every image is grey, else 3. Without `size`, the images must all
    have one size (DataFileError listing the sizes otherwise).
    """
    label = label or path.name
    images = [decode_image(member, label) for member in image_members(path, label)]
    if channels is None:
        channels = 1 if all(image.mode == "L" for image in images) else 3
    if size is None:
        sizes = Counter((image.height, image.width) for image in images)
        if len(sizes) > 1:
            raise DataFileError(
                f"{label}: images of mixed sizes: {describe_sizes(dict(sizes))}; set "
                f"data.resize to one of {IMAGE_SIZES_TEXT}"
            )
    return np.stack([fit_image(image, size, channels) for image in images])


def fit_image_array(images: np.ndarray, size: int | None, channels: int | None) -> np.ndarray:
    """uint8 images [N, H, W, C] converted to `channels` and resized to `size` (if given)."""
    have = images.shape[3]
    channels = channels or have
    if size is None or images.shape[1:3] == (size, size):
        if channels == have:
            return images
        if channels == 3:
            return np.repeat(images, 3, axis=3)
        return np.rint(images.astype(np.float64) @ _LUMA).astype(np.uint8)[..., np.newaxis]
    mode = "L" if have == 1 else "RGB"
    return np.stack(
        [
            fit_image(Image.fromarray(image[..., 0] if have == 1 else image, mode), size, channels)
            for image in images
        ]
    )
