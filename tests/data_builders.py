"""Tiny training-data files for tests: PNG/JPEG bytes, zip and tar archives, .npz arrays."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def image_bytes(
    size: int | tuple[int, int] = 28, mode: str = "L", fmt: str = "PNG", value: int = 0
) -> bytes:
    """An image of `size` (side, or (width, height)) filled with a gradient plus `value`."""
    width, height = (size, size) if isinstance(size, int) else size
    ramp = (np.arange(width * height).reshape(height, width) + value) % 256
    pixels = ramp.astype(np.uint8)
    image = Image.fromarray(pixels, "L")
    if mode != "L":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def write_tar(path: Path, members: dict[str, bytes]) -> Path:
    """A tar, gzipped when the name ends in .gz or .tgz."""
    mode = "w:gz" if path.name.endswith((".gz", ".tgz")) else "w"
    with tarfile.open(path, mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def grey_pngs(count: int, size: int = 28, prefix: str = "img") -> dict[str, bytes]:
    return {f"{prefix}{i:03d}.png": image_bytes(size, value=i) for i in range(count)}
