"""Data files that lie, for the hostile battery: broken gzip idx files, zips whose directory
understates a member, .npz headers promising 10^12 items, image headers promising gigapixels,
links in archives, and a data folder whose members are links to files outside it.

Each is built in memory from its format's own layout (zip headers, gzip trailer, .npy
header), small on the wire however much it claims or expands to.
"""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from tests.data_builders import grey_pngs, image_bytes

IDX3_MAGIC = 0x00000803
# zip header offsets (APPNOTE 4.3.7 local file header, 4.3.12 central directory entry).
_LOCAL, _CENTRAL = b"PK\x03\x04", b"PK\x01\x02"
_LOCAL_CRC, _CENTRAL_CRC = 14, 16


def idx3(count: int = 4, side: int = 28) -> bytes:
    """An idx3 file of `count` grey images, as MNIST ships them."""
    pixels = (np.arange(count * side * side) % 251).astype(np.uint8).tobytes()
    return struct.pack(">IIII", IDX3_MAGIC, count, side, side) + pixels


def truncated_gzip_idx() -> bytes:
    """A gzipped idx3 file cut off in the middle of its deflate stream."""
    whole = gzip.compress(idx3(64), mtime=0)
    return whole[: len(whole) // 2]


def bad_crc_gzip_idx() -> bytes:
    """A gzipped idx3 file, complete, whose trailer's CRC-32 does not match its bytes."""
    whole = bytearray(gzip.compress(idx3(16), mtime=0))
    whole[-8:-4] = bytes(b ^ 0xFF for b in whole[-8:-4])
    return bytes(whole)


def lying_gzip_idx(promised_bytes: int, held_bytes: int) -> bytes:
    """A gzipped idx3 file whose header promises `promised_bytes` of pixels but which holds
    `held_bytes` of zeros: the check must stream through all of them to notice."""
    side = 28
    count = promised_bytes // (side * side)
    header = struct.pack(">IIII", IDX3_MAGIC, count, side, side)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    zeros = bytes(1024 * 1024)
    parts = [compressor.compress(header)]
    for _ in range(held_bytes // len(zeros)):
        parts.append(compressor.compress(zeros))
    parts.append(compressor.flush())
    return b"".join(parts)


def understated_zip(real_bytes: int, *, crc_of_declared: bool) -> bytes:
    """A zip of one `img000.png` member whose directory says it holds a small PNG (the
    declared size is the PNG's, about 100 B) while its deflate stream holds the PNG followed
    by `real_bytes` of zeros. With `crc_of_declared`, the CRC-32 is the PNG's, so a reader
    that stops at the declared size finds a valid image; without, it is the whole stream's.
    """
    png = image_bytes(8)
    content = png + bytes(real_bytes)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("img000.png", content)
    data = bytearray(buffer.getvalue())
    crc = zlib.crc32(png) if crc_of_declared else zlib.crc32(content)
    local, central = data.index(_LOCAL), data.rindex(_CENTRAL)  # one member: the last entry
    # Local header: CRC, compressed size, uncompressed size at 14, 18, 22; central: 16, 20, 24.
    struct.pack_into("<I", data, local + _LOCAL_CRC, crc)
    struct.pack_into("<I", data, local + _LOCAL_CRC + 8, len(png))
    struct.pack_into("<I", data, central + _CENTRAL_CRC, crc)
    struct.pack_into("<I", data, central + _CENTRAL_CRC + 8, len(png))
    return bytes(data)


def npz_promising(shape: tuple[int, ...], descr: str, version: tuple[int, int] = (1, 0)) -> bytes:
    """An .npz whose one array's .npy header promises `shape` (10^12 items, say) and which
    holds 64 bytes after the header."""
    npy = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    if version == (1, 0):
        np.lib.format.write_array_header_1_0(npy, header)
    else:
        np.lib.format.write_array_header_2_0(npy, header)
    npy.write(bytes(64))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.npy", npy.getvalue())
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with one empty data chunk."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def zip_with_symlink(name: str, target: str) -> bytes:
    """A zip whose member `name` is a Unix symbolic link to `target` (its bytes are the
    target, its mode says link), as `zip --symlinks` makes."""
    buffer = io.BytesIO()
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: external_attr's high half is st_mode
    info.external_attr = (0o120777 << 16) & 0xFFFF0000
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(info, target)
        for member, data in grey_pngs(2).items():
            archive.writestr(member, data)
    return buffer.getvalue()


def tar_with_link(name: str, target: str, *, hard: bool = False) -> bytes:
    """A tar whose member `name` is a symbolic (or hard) link to `target`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for member, data in grey_pngs(2).items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo(name)
        link.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
        link.linkname = target
        archive.addfile(link)
    return buffer.getvalue()


def tar_with_member(name: str) -> bytes:
    """A tar holding one PNG under `name` (say `../../escape.png`)."""
    buffer = io.BytesIO()
    data = image_bytes(8)
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def small_npz() -> bytes:
    """A valid upload: 10 points in the plane."""
    buffer = io.BytesIO()
    np.savez(buffer, data=np.zeros((10, 2), np.float32))
    return buffer.getvalue()


def linked_image_folder(root: Path, outside: Path, count: int = 8) -> Path:
    """Under `root`, a folder `linked/` whose members are links to PNGs in `outside`
    (written there first): the folder itself lies under the root, its data does not."""
    outside.mkdir(parents=True, exist_ok=True)
    folder = root / "linked"
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in grey_pngs(count).items():
        (outside / name).write_bytes(data)
        (folder / name).symlink_to(outside / name)
    (root / "escape").symlink_to(outside, target_is_directory=True)
    return folder
