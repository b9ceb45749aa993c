"""Uploads that expand far beyond their size are refused with a 4xx, and checking them keeps
the API's memory bounded: the gzip, the lying header, the many-member zip, the zip whose
directory lies, the .npz whose header does, the PNG that claims 60000 x 60000."""

from __future__ import annotations

import gzip
import io
import re
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient

from shared.datafiles import images as imagefiles
from shared.datafiles.formats import DataFileError, read_npz
from tests.data_builders import grey_pngs, write_zip
from tests.helpers import auth

# What checking one bomb may allocate in the API process (Python allocations, measured with
# tracemalloc): a few 1 MiB read chunks and the request's own buffers.
MEMORY_BOUND = 48 * 1024 * 1024


def _upload(client: FlaskClient, token: str, name: str, data: bytes) -> tuple[int, dict, int]:
    """(status, body, peak bytes allocated while the API handled the upload)."""
    form = {"file": (io.BytesIO(data), name), "name": "bomb"}
    tracemalloc.start()
    try:
        response = client.post(
            "/api/v1/datasets", data=form, headers=auth(token), content_type="multipart/form-data"
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return response.status_code, response.get_json(), peak


def _idx3_gz(count: int, side: int, pixels: int) -> bytes:
    """A gzipped idx3 whose header says `count` images of side x side, followed by `pixels`
    zero bytes (compressed ~1000:1)."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as file:
        file.write(struct.pack(">IIII", 0x803, count, side, side))
        block = bytes(1024 * 1024)
        for _ in range(pixels // len(block)):
            file.write(block)
    return out.getvalue()


def test_an_idx_whose_header_promises_too_much_is_refused_before_expanding(
    client: FlaskClient, alice: str
) -> None:
    claims = _idx3_gz(6_000_000, 28, 0)  # 4.7 GB of pixels promised
    status, body, peak = _upload(client, alice, "t10k-images-idx3-ubyte.gz", claims)
    assert status == 422, body
    assert "more than 4294967296 bytes of pixels" in body["detail"]
    assert peak < MEMORY_BOUND


def test_an_idx_gzip_bomb_is_streamed_through_and_refused_with_memory_bounded(
    client: FlaskClient, alice: str
) -> None:
    bomb = _idx3_gz(1000, 28, 512 * 1024 * 1024)  # 512 MiB of zeros behind a 1000-image header
    assert len(bomb) < 1024 * 1024
    status, body, peak = _upload(client, alice, "t10k-images-idx3-ubyte.gz", bomb)
    assert status == 422, body
    assert "header promises 784016" in body["detail"]
    assert peak < MEMORY_BOUND, f"{peak / 2**20:.0f} MiB allocated"


def test_a_zip_with_too_many_members_is_refused_from_its_directory(
    client: FlaskClient, alice: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imagefiles, "MAX_ARCHIVE_MEMBERS", 200)
    archive = write_zip(tmp_path / "many.zip", grey_pngs(201, 8))
    status, body, _ = _upload(client, alice, "many.zip", archive.read_bytes())
    assert status == 422 and "201 members, more than 200" in body["detail"], body


def test_a_png_claiming_60000_by_60000_is_a_422_not_a_500(
    client: FlaskClient, alice: str, tmp_path: Path
) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("huge.png", _png_header(60_000, 60_000))
    status, body, peak = _upload(client, alice, "huge.zip", archive.getvalue())
    assert status == 422, body
    assert "huge.png" in body["detail"] and "pixels" in body["detail"]
    assert peak < MEMORY_BOUND


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk (8-bit grey) with no pixels after it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _lying_zip(name: str, payload: bytes, declared: int, crc_of_declared: bool = False) -> bytes:
    """A zip whose one member holds `payload` (deflated) while its local header and central
    directory both say it expands to `declared` bytes (and, with `crc_of_declared`, carry
    the CRC of those first bytes, so that reading only as far as declared finds no fault)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, payload)
    raw = bytearray(out.getvalue())
    local, central = raw.find(b"PK\x03\x04"), raw.find(b"PK\x01\x02")
    struct.pack_into("<I", raw, local + 22, declared)  # uncompressed size
    struct.pack_into("<I", raw, central + 24, declared)
    if crc_of_declared:
        crc = zlib.crc32(payload[:declared])
        struct.pack_into("<I", raw, local + 14, crc)
        struct.pack_into("<I", raw, central + 16, crc)
    return bytes(raw)


def test_a_zip_member_holding_far_more_than_its_directory_says_costs_one_chunk(
    client: FlaskClient, alice: str
) -> None:
    """zipfile's read() of a whole member decompresses everything in one call before it
    compares sizes: 16 MiB behind a 100-byte entry cost 45 MiB here (1 GiB cost 2.2 GB)."""
    archive = _lying_zip("a.png", bytes(16 * 1024 * 1024), declared=100)
    status, body, peak = _upload(client, alice, "lies.zip", archive)
    assert status == 422 and "a.png" in body["detail"], body
    assert peak < 8 * 1024 * 1024, f"{peak / 2**20:.1f} MiB allocated"


def test_a_zip_member_whose_crc_covers_only_its_declared_size_is_refused_too(
    client: FlaskClient, alice: str
) -> None:
    """Read only as far as its directory says, this member is a valid 100-byte file; its
    stream holds 4 MiB. It is refused for the lie, at the cost of one chunk."""
    archive = _lying_zip("a.png", bytes(4 * 1024 * 1024), declared=100, crc_of_declared=True)
    status, body, peak = _upload(client, alice, "lies.zip", archive)
    assert status == 422 and "'a.png' holds more than the 100 bytes" in body["detail"], body
    assert peak < 8 * 1024 * 1024, f"{peak / 2**20:.1f} MiB allocated"


def test_a_member_is_cut_off_at_the_cap_whatever_its_reader_lets_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cap counts the bytes a member produces, not what any header says of them."""
    monkeypatch.setattr(imagefiles, "MAX_MEMBER_BYTES", 3 * 1024 * 1024)
    budget = imagefiles._ExpansionBudget()
    assert budget.read(io.BytesIO(bytes(3 * 1024 * 1024)), "a.png", "x.zip") == bytes(3 << 20)
    with pytest.raises(imagefiles.DataFileError, match=r"'b\.png' expands past an image's"):
        budget.read(io.BytesIO(bytes(3 * 1024 * 1024 + 1)), "b.png", "x.zip")
    monkeypatch.setattr(imagefiles, "MAX_DECOMPRESSED_BYTES", 4 * 1024 * 1024)
    budget = imagefiles._ExpansionBudget()
    budget.read(io.BytesIO(bytes(3 * 1024 * 1024)), "a.png", "x.zip")
    with pytest.raises(imagefiles.DataFileError, match="the archive's limit of 1048576"):
        budget.read(io.BytesIO(bytes(2 * 1024 * 1024)), "b.png", "x.zip")


def _npz_promising(shape: tuple[int, ...], data: bytes, dtype: str = "<f4") -> bytes:
    """An .npz whose one array's header says `shape` of `dtype`, followed by `data`."""
    npy = io.BytesIO()
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(npy, header)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data.npy", npy.getvalue() + data)
    return out.getvalue()


@pytest.mark.parametrize(
    ("shape", "data", "reason"),
    [
        ((10**12, 2), bytes(800), "more than 4294967296 bytes"),  # 7 TiB once loaded
        ((1000, 2), bytes(800), "holds 800 bytes, not the 8000 bytes its header promises"),
        ((10, 2), bytes(8000), "holds more than the 80 bytes its header promises"),
    ],
)
def test_an_npz_whose_header_disagrees_with_its_data_is_refused_at_upload_and_load(
    client: FlaskClient, alice: str, tmp_path: Path, shape: tuple, data: bytes, reason: str
) -> None:
    npz = _npz_promising(shape, data)
    status, body, peak = _upload(client, alice, "points.npz", npz)
    assert status == 422 and reason in body["detail"], body
    assert peak < MEMORY_BOUND
    path = tmp_path / "points.npz"
    path.write_bytes(npz)
    with pytest.raises(DataFileError, match=re.escape(reason)):
        read_npz(path)  # the worker's loader: before numpy allocates what the header says
