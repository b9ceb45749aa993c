"""Reading and checking data files without torch: the rules uploads and the worker share."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from shared.datafiles import images as imagefiles
from shared.datafiles.formats import (
    DataFileError,
    detect_format,
    fit_image_array,
    inspect_data,
    read_images,
    read_npz,
)
from tests.data_builders import grey_pngs, image_bytes, write_npz, write_tar, write_zip


def test_formats_are_told_by_file_name() -> None:
    assert detect_format("points.NPZ") == "npz"
    assert detect_format("faces.zip") == "zip"
    assert [detect_format(n) for n in ("a.tar", "a.tar.gz", "a.tgz")] == ["tar"] * 3
    assert detect_format("train-images-idx3-ubyte.gz") == "idx"
    assert detect_format("notes.txt") is None and detect_format("a.gz") is None


def test_npz_points_and_images_are_told_apart_by_rank(tmp_path: Path) -> None:
    points = write_npz(tmp_path / "p.npz", data=np.zeros((10, 2), np.float32))
    line = write_npz(tmp_path / "l.npz", x=np.zeros((10, 1)))
    grey = write_npz(tmp_path / "g.npz", images=np.zeros((4, 32, 32), np.uint8))
    colour = write_npz(tmp_path / "c.npz", images=np.zeros((4, 28, 28, 3), np.float32))
    assert inspect_data(points).kind == "points" and inspect_data(points).shape == (2,)
    assert inspect_data(line).shape == (1,)
    assert (inspect_data(grey).kind, inspect_data(grey).shape) == ("images", (1, 32, 32))
    assert inspect_data(colour).shape == (3, 28, 28) and inspect_data(colour).count == 4


def test_npz_with_several_arrays_needs_one_named_data(tmp_path: Path) -> None:
    ok = write_npz(tmp_path / "ok.npz", data=np.zeros((3, 2)), labels=np.zeros(3))
    assert inspect_data(ok).count == 3
    bad = write_npz(tmp_path / "bad.npz", a=np.zeros((3, 2)), b=np.zeros((3, 2)))
    with pytest.raises(DataFileError, match=r"bad.npz: .*arrays a, b; .*'data'"):
        inspect_data(bad)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((5, 3), np.float32), r"\[N, 1\] or \[N, 2\]"),
        (np.zeros((5,), np.float32), "expected points"),
        (np.zeros((5, 8, 8, 4), np.uint8), "1 or 3 channels"),
        (np.zeros((5, 8, 8), np.int64), "uint8 or float"),
        (np.zeros((0, 2), np.float32), "empty"),
    ],
)
def test_unusable_npz_arrays_are_refused_naming_the_file(
    tmp_path: Path, array: np.ndarray, message: str
) -> None:
    path = write_npz(tmp_path / "odd.npz", data=array)
    with pytest.raises(DataFileError, match=f"odd.npz: .*{message}"):
        inspect_data(path)


def test_npz_reading_checks_values_and_scales_float_images(tmp_path: Path) -> None:
    nan = write_npz(tmp_path / "nan.npz", data=np.array([[0.0, np.nan]]))
    with pytest.raises(DataFileError, match="NaN"):
        read_npz(nan)
    loud = write_npz(tmp_path / "loud.npz", data=np.full((2, 8, 8), 2.0))
    with pytest.raises(DataFileError, match=r"float images must lie in \[0, 1\]"):
        read_npz(loud)
    half = write_npz(tmp_path / "half.npz", data=np.full((2, 8, 8), 0.5))
    kind, images = read_npz(half)
    assert kind == "images" and images.shape == (2, 8, 8, 1) and images.dtype == np.uint8
    assert images.max() == 128


def test_a_file_that_is_not_an_npz_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fake.npz"
    path.write_bytes(b"hello")
    with pytest.raises(DataFileError, match=r"fake.npz: not a readable .npz"):
        inspect_data(path)


@pytest.mark.parametrize("name", ["faces.zip", "faces.tar", "faces.tar.gz"])
def test_archives_of_images_are_counted_and_sized(tmp_path: Path, name: str) -> None:
    members = {
        **grey_pngs(3, 32),
        "README.md": b"# faces",
        "sub/x.jpg": image_bytes(32, "RGB", "JPEG"),
    }
    writer = write_zip if name.endswith(".zip") else write_tar
    info = inspect_data(writer(tmp_path / name, members))
    assert (info.kind, info.count, info.shape) == ("images", 4, (3, 32, 32))


def test_grey_only_archives_default_to_one_channel(tmp_path: Path) -> None:
    info = inspect_data(write_zip(tmp_path / "g.zip", grey_pngs(2)))
    assert info.shape == (1, 28, 28) and info.channels == 1


@pytest.mark.parametrize("member", ["../evil.png", "/etc/evil.png", "a/../../evil.png"])
@pytest.mark.parametrize("name", ["bad.zip", "bad.tar"])
def test_member_names_that_leave_the_archive_are_refused(
    tmp_path: Path, name: str, member: str
) -> None:
    writer = write_zip if name.endswith(".zip") else write_tar
    path = writer(tmp_path / name, {**grey_pngs(1), member: image_bytes()})
    with pytest.raises(DataFileError, match=f"{name}: member .*unsafe path"):
        inspect_data(path)


def test_an_image_member_that_does_not_decode_is_refused_by_name(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "bad.zip", {**grey_pngs(2), "broken.png": b"not a png"})
    with pytest.raises(DataFileError, match=r"bad.zip: image 'broken.png' cannot be decoded"):
        inspect_data(path)
    truncated = image_bytes(28)[:-40]
    path = write_tar(tmp_path / "cut.tar", {"cut.png": truncated})
    with pytest.raises(DataFileError, match=r"cut.tar: image 'cut.png' cannot be decoded"):
        inspect_data(path)


@pytest.mark.parametrize("decode", [True, False])
def test_an_oversized_image_is_refused_alike_decoded_or_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, decode: bool
) -> None:
    """One guard for both: reading headers alone once wrapped its refusal in "cannot be
    decoded (...)", naming the archive twice."""
    monkeypatch.setattr(imagefiles, "MAX_IMAGE_PIXELS", 100)
    path = write_zip(tmp_path / "big.zip", {"big.png": image_bytes(28)})
    with pytest.raises(DataFileError) as refused:
        inspect_data(path, decode=decode)
    assert str(refused.value) == "big.zip: image 'big.png' is 28x28, more than 100 pixels"


def test_hidden_files_and_macos_folders_are_skipped(tmp_path: Path) -> None:
    junk = {"__MACOSX/._a.png": b"\x00\x05junk", ".DS_Store": b"junk", "._b.png": b"junk"}
    info = inspect_data(write_zip(tmp_path / "mac.zip", {**grey_pngs(2), **junk}))
    assert info.count == 2


@pytest.mark.parametrize("name", ["empty.zip", "empty.tar.gz"])
def test_archives_without_images_are_refused(tmp_path: Path, name: str) -> None:
    writer = write_zip if name.endswith(".zip") else write_tar
    path = writer(tmp_path / name, {"README.md": b"nothing here"})
    with pytest.raises(DataFileError, match=f"{name}: holds no PNG or JPEG images"):
        inspect_data(path)


def test_a_corrupt_archive_is_refused(tmp_path: Path) -> None:
    for name in ("x.zip", "x.tar.gz"):
        (tmp_path / name).write_bytes(b"PK\x03\x04 not really")
        with pytest.raises(DataFileError, match=f"{name}: not a readable"):
            inspect_data(tmp_path / name)


def test_tar_links_named_like_images_are_refused(tmp_path: Path) -> None:
    import tarfile

    path = tmp_path / "links.tar"
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo("link.png")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(info)
    with pytest.raises(DataFileError, match=r"'link.png' is a link"):
        inspect_data(path)


def test_idx3_files_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(struct.pack(">IIII", 0x803, 2, 28, 28) + bytes(2 * 784)))
    info = inspect_data(path)
    assert (info.format, info.count, info.shape) == ("idx", 2, (1, 28, 28))
    path.write_bytes(gzip.compress(struct.pack(">IIII", 0x803, 2, 28, 28) + bytes(10)))
    with pytest.raises(DataFileError, match="header promises"):
        inspect_data(path)


def test_mixed_sizes_are_reported_and_need_resize(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "mixed.zip", {**grey_pngs(2, 28), "big.png": image_bytes(32)})
    info = inspect_data(path)
    assert info.shape is None and info.sizes == {(28, 28): 2, (32, 32): 1}
    with pytest.raises(DataFileError, match=r"mixed.zip: images of mixed sizes: 28x28 \(2"):
        read_images(path, None, None, None)
    assert read_images(path, None, 32, None).shape == (3, 32, 32, 1)


def test_resize_center_crops_to_a_square_first(tmp_path: Path) -> None:
    wide = np.zeros((40, 80), np.uint8)
    wide[:, 20:60] = 255  # the centre square is white, the sides black
    folder = tmp_path / "wide"
    folder.mkdir()
    from PIL import Image

    Image.fromarray(wide).save(folder / "wide.png")
    images = read_images(folder, "wide", 28, None)
    assert images.shape == (1, 28, 28, 1) and images.min() > 250


def test_channels_convert_grey_and_colour(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "c.zip", {"a.png": image_bytes(28, "RGB"), **grey_pngs(1)})
    assert read_images(path, None, None, None).shape == (2, 28, 28, 3)
    assert read_images(path, None, None, 1).shape == (2, 28, 28, 1)
    grey = np.full((2, 28, 28, 1), 7, np.uint8)
    assert fit_image_array(grey, None, 3).shape == (2, 28, 28, 3)
    colour = np.full((2, 28, 28, 3), 200, np.uint8)
    assert fit_image_array(colour, 32, 1).shape == (2, 32, 32, 1)
    assert fit_image_array(colour, None, 1)[0, 0, 0, 0] == 200
