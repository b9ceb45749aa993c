"""Reading and checking training-data files with numpy and Pillow only (no torch).

The API calls `inspect_data` on an upload before storing it; the worker calls the `read_*`
functions to load the same files for training. Both see the same rules, so a file the API
accepted never fails on the worker for a reason the API could have seen.

Formats (`detect_format`, by file name):

- `npz`: one array (or one named `data`): points [N, 1] / [N, 2] of real numbers, or images
  [N, H, W] / [N, H, W, C] (C = 1 or 3) of uint8 in [0, 255] or floats in [0, 1];
- `zip`, `tar` (also .tar.gz / .tgz): PNG or JPEG images; other files (README, hidden files,
  macOS `__MACOSX/` folders) are skipped, a file named like an image that does not decode is
  an error;
- `idx`: an idx3 file of uint8 images (MNIST's format), gzipped or not.

A folder of images (on a worker's disk) reads like an archive.
"""

from __future__ import annotations

import gzip
import math
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import numpy as np

from shared.datafiles.confine import open_file
from shared.datafiles.images import (
    GREY_MODES,
    MAX_DECOMPRESSED_BYTES,
    ImageMember,
    archive_format,
    decode_image,
    image_members,
    open_image,
)
from shared.datafiles.images import DataFileError as DataFileError
from shared.datafiles.images import describe_sizes as describe_sizes
from shared.datafiles.images import fit_image_array as fit_image_array
from shared.datafiles.images import read_images as read_images
from shared.specs.data import POINT_DIMS

DataKind = Literal["points", "images"]

# The array an .npz holding several must name its training data.
NPZ_DATA_ARRAY = "data"
# An .npz's class labels, one integer per sample (conditional GANs); never the training data.
NPZ_LABELS_ARRAY = "labels"
# idx3 header: magic 0x00000803 means unsigned bytes, 3 dimensions (images, rows, columns).
IDX3_MAGIC = 0x00000803
IDX3_HEADER = struct.Struct(">IIII")
IDX1_MAGIC = 0x00000801
IDX1_HEADER = struct.Struct(">II")
# Read size when streaming through a file to check it.
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class DataInfo:
    """What a data file holds. `shape` is one item's shape, [d] for points and
    [channels, height, width] for images, or None when the images differ in size."""

    format: str
    kind: DataKind
    count: int
    shape: tuple[int, ...] | None
    # Images only: every distinct (height, width) with how many images have it, and 1 when
    # every image is grey, else 3.
    sizes: dict[tuple[int, int], int] | None = None
    channels: int | None = None


def detect_format(name: str) -> str | None:
    """The format a file name says it has: npz, zip, tar or idx; None for anything else."""
    lower = name.lower()
    if lower.endswith(".npz"):
        return "npz"
    if lower.endswith(("idx3-ubyte", "idx3-ubyte.gz")):
        return "idx"
    return archive_format(lower)


def inspect_data(path: Path, name: str | None = None, *, decode: bool = True) -> DataInfo:
    """Open `path` (a file of a known format, or a folder of images), check it, describe it.

    `name` is the file name to report and detect the format by (an upload's temporary file
    has none of its own). `decode=False` reads image headers only (sizes and colours, not
    whether the pixels decode). Raises DataFileError naming the file and the reason.
    """
    label = name or path.name
    if path.is_dir():
        return _inspect_images(image_members(path, label), "folder", label, decode)
    fmt = detect_format(label)
    if fmt == "npz":
        return _inspect_npz(path, label)
    if fmt == "idx":
        return _inspect_idx(path, label)
    if fmt in ("zip", "tar"):
        return _inspect_images(image_members(path, label), fmt, label, decode)
    raise DataFileError(f"{label}: not a known data format (.npz, .zip, .tar, .tar.gz, idx3)")


# --- npz ---------------------------------------------------------------------------------


def _npz_member(names: list[str], label: str) -> str:
    """Which array of an .npz is the training data (a `labels` array beside it is not)."""
    names = [name for name in names if name != NPZ_LABELS_ARRAY] or names
    if len(names) == 1:
        return names[0]
    if NPZ_DATA_ARRAY in names:
        return NPZ_DATA_ARRAY
    if not names:
        raise DataFileError(f"{label}: the .npz holds no arrays")
    raise DataFileError(
        f"{label}: the .npz holds arrays {', '.join(sorted(names))}; keep one, or name "
        f"the training data {NPZ_DATA_ARRAY!r}"
    )


def _npz_kind(shape: tuple[int, ...], dtype: np.dtype, label: str) -> DataKind:
    """Points or images, from an array's rank; DataFileError for anything else."""
    if len(shape) == 2:
        if shape[1] not in POINT_DIMS or dtype.kind not in "fiu":
            raise DataFileError(
                f"{label}: points must be an [N, 1] or [N, 2] array of numbers, got "
                f"{list(shape)} {dtype}"
            )
        return "points"
    if len(shape) in (3, 4):
        if len(shape) == 4 and shape[3] not in (1, 3):
            raise DataFileError(f"{label}: images need 1 or 3 channels, got {shape[3]}")
        if dtype != np.uint8 and dtype.kind != "f":
            raise DataFileError(f"{label}: images must be uint8 or float, got {dtype}")
        return "images"
    raise DataFileError(
        f"{label}: expected points [N, d] or images [N, H, W(, C)], got an array of shape "
        f"{list(shape)}"
    )


def _npz_header(path: Path, label: str) -> tuple[str, tuple[int, ...], np.dtype]:
    """The training array's name, shape and dtype, from its header, checked against the
    bytes that really follow it: the member is streamed through (one chunk of memory however
    large), so a header promising 10^12 items over a few bytes of data is refused here, not
    by a 7 TiB allocation when the array is loaded."""
    try:
        with open_file(path, label) as raw, zipfile.ZipFile(raw) as archive:
            names = [n.removesuffix(".npy") for n in archive.namelist() if n.endswith(".npy")]
            member = _npz_member(names, label)
            with archive.open(member + ".npy") as file:
                shape, dtype = _npy_header(file, member, label)
                promised = math.prod(shape) * dtype.itemsize
                if promised > MAX_DECOMPRESSED_BYTES:
                    raise DataFileError(
                        f"{label}: the header of {member!r} promises {list(shape)} {dtype}, "
                        f"more than {MAX_DECOMPRESSED_BYTES} bytes"
                    )
                found = _count_to(file, promised, label)
    except DataFileError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as exc:
        raise DataFileError(f"{label}: not a readable .npz ({exc})") from exc
    if found != promised:
        what = "more than" if found > promised else f"{found} bytes, not"
        raise DataFileError(
            f"{label}: the array {member!r} holds {what} the {promised} bytes its header "
            f"promises ({list(shape)} {dtype})"
        )
    return member, tuple(shape), np.dtype(dtype)


def _npy_header(file: IO[bytes], member: str, label: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy header (formats 1.0 and 2.0). Format 3.0 only differs by
    utf-8 field names in structured dtypes, which are never training data; reading it would
    mean numpy's private reader or loading the whole array, so it is refused."""
    version = np.lib.format.read_magic(file)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(file)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(file)
    else:
        raise DataFileError(
            f"{label}: the array {member!r} is in .npy format {version[0]}.{version[1]}; save "
            "plain numbers (numpy.savez writes format 1.0)"
        )
    return tuple(shape), np.dtype(dtype)


def _inspect_npz(path: Path, label: str) -> DataInfo:
    member, shape, dtype = _npz_header(path, label)
    kind = _npz_kind(shape, dtype, label)
    if shape[0] == 0:
        raise DataFileError(f"{label}: the array {member!r} is empty")
    if kind == "points":
        return DataInfo("npz", "points", shape[0], (shape[1],))
    channels = shape[3] if len(shape) == 4 else 1
    size = (shape[1], shape[2])
    return DataInfo("npz", "images", shape[0], (channels, *size), {size: shape[0]}, channels)


def read_npz(path: Path, label: str | None = None) -> tuple[DataKind, np.ndarray]:
    """The training array of an .npz: points as float32 [N, d], images as uint8 [N, H, W, C].

    Its header is checked against its data first (one streamed pass): numpy allocates the
    whole array its header describes before it reads a byte of it."""
    label = label or path.name
    _npz_header(path, label)
    try:
        with open_file(path, label) as raw, np.load(raw, allow_pickle=False) as npz:
            member = _npz_member(list(npz.files), label)
            array = npz[member]
    except DataFileError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DataFileError(f"{label}: not a readable .npz ({exc})") from exc
    kind = _npz_kind(array.shape, array.dtype, label)
    if len(array) == 0:
        raise DataFileError(f"{label}: the array {member!r} is empty")
    if array.dtype.kind in "fc" and not np.isfinite(array).all():
        raise DataFileError(f"{label}: the array {member!r} holds NaN or infinite values")
    if kind == "points":
        return kind, array.astype(np.float32)
    if array.ndim == 3:
        array = array[..., np.newaxis]
    if array.dtype != np.uint8:
        if array.min() < 0 or array.max() > 1:
            raise DataFileError(
                f"{label}: float images must lie in [0, 1], found [{array.min():g}, "
                f"{array.max():g}]"
            )
        array = np.rint(array * 255).astype(np.uint8)
    return kind, array


# --- idx3 --------------------------------------------------------------------------------


def read_idx3(path: Path, label: str | None = None, side: int | None = None) -> np.ndarray:
    """The images of an idx3 file (gzipped when its name ends in .gz) as uint8 [N, H, W].

    With `side`, the images must be side x side.
    """
    label = label or str(path)
    with _open_maybe_gzipped(path, label) as file:
        count, rows, columns = _idx3_header(file, label, side)
        raw = _read_exactly(file, count * rows * columns, label)
    pixels = np.frombuffer(raw, dtype=np.uint8)
    return pixels.reshape(count, rows, columns).copy()


def read_idx1(path: Path, label: str | None = None) -> np.ndarray:
    """The labels of an idx1 file (MNIST's labels; gzipped when its name ends in .gz) as
    uint8 [N]."""
    label = label or str(path)
    with _open_maybe_gzipped(path, label) as file:
        header = _read(file, IDX1_HEADER.size, label)
        if len(header) < IDX1_HEADER.size:
            raise DataFileError(f"{label}: {len(header)} bytes, too short for an idx1 header")
        magic, count = IDX1_HEADER.unpack(header)
        if magic != IDX1_MAGIC:
            raise DataFileError(
                f"{label}: magic number {magic:#010x}, expected {IDX1_MAGIC:#010x} (idx1)"
            )
        if count > MAX_DECOMPRESSED_BYTES:
            raise DataFileError(f"{label}: its header promises {count} labels")
        raw = _read(file, count + 1, label)
    if len(raw) != count:
        raise DataFileError(f"{label}: {len(raw)} labels, but its header promises {count}")
    return np.frombuffer(raw, dtype=np.uint8).copy()


def _inspect_idx(path: Path, label: str) -> DataInfo:
    """Check an idx3 file by streaming through it: memory stays at one chunk however large
    the file expands (a 1 MB gzip can hold gigabytes of zeros)."""
    with _open_maybe_gzipped(path, label) as file:
        count, rows, columns = _idx3_header(file, label, None)
        expected = count * rows * columns
        _check_length(_count_to(file, expected, label), expected, label)
    size = (rows, columns)
    return DataInfo("idx", "images", count, (1, *size), {size: count}, 1)


def _idx3_header(file: IO[bytes], label: str, side: int | None) -> tuple[int, int, int]:
    """(count, rows, columns) from the 16-byte header, refusing a file whose header promises
    more than MAX_DECOMPRESSED_BYTES before a byte of pixels is read."""
    header = _read(file, IDX3_HEADER.size, label)
    if len(header) < IDX3_HEADER.size:
        raise DataFileError(f"{label}: {len(header)} bytes, too short for an idx3 header")
    magic, count, rows, columns = IDX3_HEADER.unpack(header)
    if magic != IDX3_MAGIC:
        raise DataFileError(
            f"{label}: magic number {magic:#010x}, expected {IDX3_MAGIC:#010x} (idx3)"
        )
    if count == 0 or rows == 0 or (side is not None and (rows, columns) != (side, side)):
        expected = f", expected {side}x{side}" if side is not None else ""
        raise DataFileError(f"{label}: holds {count} images of {rows}x{columns}{expected}")
    if count * rows * columns > MAX_DECOMPRESSED_BYTES:
        raise DataFileError(
            f"{label}: its header promises {count} images of {rows}x{columns}, more than "
            f"{MAX_DECOMPRESSED_BYTES} bytes of pixels"
        )
    return count, rows, columns


def _read_exactly(file: IO[bytes], expected: int, label: str) -> bytes:
    """The `expected` bytes after the header, and proof that nothing follows them."""
    raw = _read(file, expected + 1, label)
    _check_length(len(raw), expected, label)
    return raw


def _check_length(seen: int, expected: int, label: str) -> None:
    if seen != expected:
        what = "more" if seen > expected else f"{seen + IDX3_HEADER.size}"
        raise DataFileError(
            f"{label}: {what} bytes, but its header promises {expected + IDX3_HEADER.size}"
        )


def _count_to(file: IO[bytes], promised: int, label: str) -> int:
    """The bytes left in `file`, counted a chunk at a time and only up to one past what was
    `promised`: a stream that holds more than it said is caught without reading it all."""
    seen = 0
    while chunk := _read(file, min(_CHUNK, promised + 1 - seen), label):
        seen += len(chunk)
        if seen > promised:
            break
    return seen


def _read(file: IO[bytes], size: int, label: str) -> bytes:
    """Every read of a data file goes through here: a truncated gzip (EOFError), a bad CRC
    (gzip.BadGzipFile, an OSError) or a corrupt stream (zlib.error) is the file's fault."""
    try:
        return file.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFileError(f"{label}: cannot be read ({exc})") from exc


@contextmanager
def _open_maybe_gzipped(path: Path, label: str) -> Iterator[IO[bytes]]:
    with open_file(path, label) as raw:
        if path.name.endswith(".gz") or label.endswith(".gz"):
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                # A GzipFile reads as any IO[bytes] does; typeshed does not say it is one.
                yield unzipped  # type: ignore[misc]
        else:
            yield raw


# --- images (read by shared.datafiles.images) --------------------------------------------------


def _inspect_images(members: Iterator[ImageMember], fmt: str, label: str, decode: bool) -> DataInfo:
    sizes: Counter[tuple[int, int]] = Counter()
    grey = True
    for member in members:
        size, mode = _size_and_mode(member, label, decode)
        sizes[size] += 1
        grey = grey and mode == "L"
    channels = 1 if grey else 3
    shape = (channels, *next(iter(sizes))) if len(sizes) == 1 else None
    return DataInfo(fmt, "images", sum(sizes.values()), shape, dict(sizes), channels)


def _size_and_mode(member: ImageMember, label: str, decode: bool) -> tuple[tuple[int, int], str]:
    """(height, width) and L or RGB of an image, from its header alone unless `decode`."""
    if decode:
        image = decode_image(member, label)
        return (image.height, image.width), image.mode
    with open_image(member, label) as opened:
        return (opened.height, opened.width), "L" if opened.mode in GREY_MODES else "RGB"
