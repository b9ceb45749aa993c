"""How `tests/data/mnist/` was made: the first N digits of the official MNIST test set.

Run once by hand, beside a copy of the official files (it is not run by tests or CI):

    python tests/data/mnist/make_slice.py /path/to/mnist 4000

It reads `t10k-images-idx3-ubyte.gz` and `t10k-labels-idx1-ubyte.gz`, checks their md5 sums
against the published ones, and writes the first N images and labels, in the same idx format,
gzipped with a fixed mtime so the output is byte-identical on every run.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import sys
from pathlib import Path

PUBLISHED_MD5 = {
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
HERE = Path(__file__).resolve().parent


def _read_checked(folder: Path, name: str) -> bytes:
    packed = (folder / name).read_bytes()
    if hashlib.md5(packed).hexdigest() != PUBLISHED_MD5[name]:
        raise SystemExit(f"{name}: md5 differs from the published sum")
    return gzip.decompress(packed)


def _write(name: str, data: bytes) -> None:
    (HERE / name).write_bytes(gzip.compress(data, compresslevel=9, mtime=0))


def main(folder: Path, count: int) -> None:
    images = _read_checked(folder, "t10k-images-idx3-ubyte.gz")
    labels = _read_checked(folder, "t10k-labels-idx1-ubyte.gz")
    _, _, rows, cols = struct.unpack(">IIII", images[:16])
    pixels = images[16 : 16 + count * rows * cols]
    _write(
        f"t10k-{count}-images-idx3-ubyte.gz",
        struct.pack(">IIII", 0x803, count, rows, cols) + pixels,
    )
    _write(
        f"t10k-{count}-labels-idx1-ubyte.gz",
        struct.pack(">II", 0x801, count) + labels[8 : 8 + count],
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
