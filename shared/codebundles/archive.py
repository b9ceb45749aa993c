"""Code bundle archives (zip, tar.gz) read member by member, safely: the one reader both the
API (checking an upload) and the worker (unpacking it on a node) use, so a bundle the API
accepted unpacks the same way everywhere.

What is refused, with a message naming the member: links, devices and other special files;
absolute names, `..` and drive letters; control characters; two members of one name (or a
file where another member needs a folder); encrypted zip members; more than `max_files`
files; more than `max_unpacked_bytes` bytes once expanded. Sizes are counted on the bytes the
members really produce, chunk by chunk, never taken from the archive's directory, which may
lie (a zip member is read one byte past its declared size, which only a lying member has).
A zip's central directory is walked (cheap struct reads) before zipfile parses it, so a
50 MiB directory of a million entries is refused before a million objects are built.

Known limit: tarfile reads a PAX or GNU long-name header's payload in one piece, so a crafted
tar.gz can make the reader hold up to `max_unpacked_bytes` at once before it is refused (the
decompressed stream is capped at that, so never more).
"""

from __future__ import annotations

import copy
import gzip
import os
import stat
import struct
import tarfile
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

# 50 MiB packed: a research package with its configs is a few hundred kilobytes; the limit
# keeps weights and data sets (which have homes of their own: checkpoints, datasets) out.
MAX_PACKED_BYTES = 50 * 1024 * 1024
# Members are decompressed, counted and written this much at a time.
_CHUNK = 1024 * 1024
# Longest member name and name part: what file systems take (255 bytes a part).
MAX_NAME_CHARS = 1024
MAX_PART_CHARS = 255
# A zip member's general-purpose flag bit 0: encrypted.
_ENCRYPTED = 0x1
# What tar adds per member (a 512-byte header, padding to 512) and for its end: the
# decompressed tar stream may exceed the members' own bytes by this much, no more.
_TAR_OVERHEAD_PER_ENTRY = 1536
_TAR_OVERHEAD = 64 * 1024

ZIP, TAR_GZ = "zip", "tar.gz"


class ArchiveError(ValueError):
    """The archive is unreadable or breaks a rule; the message says which member and why."""


@dataclass(frozen=True)
class Limits:
    """What one bundle may hold once unpacked. Folders count toward `max_entries` (files and
    folders together) only, so a tree of empty folders cannot stand in for files."""

    max_files: int = 10_000
    max_unpacked_bytes: int = 200 * 1024 * 1024

    @property
    def max_entries(self) -> int:
        return 2 * self.max_files


LIMITS = Limits()


@dataclass
class Member:
    """One member: its checked name (a relative POSIX path) and, for a file, its bytes as
    chunks (checked and counted as they come; what the caller leaves unread is drained)."""

    name: str
    is_dir: bool
    chunks: Iterator[bytes] = field(default_factory=lambda: iter(()))


@dataclass(frozen=True)
class Summary:
    """What an archive holds: its files' names and their bytes together."""

    files: tuple[str, ...]
    unpacked_bytes: int


def detect_format(head: bytes) -> str | None:
    """zip or tar.gz by the first bytes of the file (the name may say anything)."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return ZIP
    if head.startswith(b"\x1f\x8b"):
        return TAR_GZ
    return None


def members(path: Path, fmt: str, label: str, limits: Limits = LIMITS) -> Iterator[Member]:
    """The archive's members in stored order, each checked as above (ArchiveError)."""
    if fmt == ZIP:
        yield from _zip_members(path, label, limits)
    elif fmt == TAR_GZ:
        yield from _tar_members(path, label, limits)
    else:
        raise ArchiveError(f"{label}: not a zip or tar.gz archive")


def summarize(path: Path, fmt: str, label: str, limits: Limits = LIMITS) -> Summary:
    """Read every member (nothing is written) and say what the archive holds."""
    files: list[str] = []
    total = 0
    for member in members(path, fmt, label, limits):
        if not member.is_dir:
            files.append(member.name)
            total += sum(len(chunk) for chunk in member.chunks)
    return Summary(tuple(files), total)


def unpack(path: Path, fmt: str, target: Path, label: str, limits: Limits = LIMITS) -> int:
    """Write the members under `target` (an empty folder) readable by all: folders 0755, files
    0644, whatever modes the archive gives (no executable bits, no set-id), owned by this
    process's user. Returns the bytes written."""
    total = 0
    for member in members(path, fmt, label, limits):
        place = target.joinpath(*member.name.split("/"))
        if member.is_dir:
            place.mkdir(parents=True, exist_ok=True)
            continue
        place.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL and O_NOFOLLOW: nothing already there (a link included) is written through.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(place, flags, 0o644)
        with os.fdopen(fd, "wb") as out:
            for chunk in member.chunks:
                out.write(chunk)
                total += len(chunk)
            os.fchmod(out.fileno(), 0o644)  # the umask may have taken bits off
    for folder, _, _ in os.walk(target):
        os.chmod(folder, 0o755)
    return total


class _Names:
    """The names seen so far: each checked, none twice, no file where a folder must be."""

    def __init__(self, label: str, limits: Limits) -> None:
        self.label, self.limits = label, limits
        self.files: set[str] = set()
        self.folders: set[str] = set()
        self.entries = 0

    def add(self, raw: str, is_dir: bool) -> str | None:
        """The member's checked name; None for the archive's own root (`./`)."""
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise ArchiveError(
                f"{self.label}: more than {self.limits.max_entries} members (files and folders)"
            )
        name = safe_name(raw, self.label)
        if name is None:
            if not is_dir:
                raise ArchiveError(f"{self.label}: member {raw!r} has no name")
            return None
        parents = [str(p) for p in PurePosixPath(name).parents][:-1]  # "a/b/c" -> a/b, a
        if is_dir:
            if name in self.files:
                raise ArchiveError(f"{self.label}: {name!r} is both a file and a folder")
        else:
            if name in self.files:
                raise ArchiveError(f"{self.label}: member {name!r} appears twice")
            if name in self.folders:
                raise ArchiveError(f"{self.label}: {name!r} is both a file and a folder")
            self.files.add(name)
            if len(self.files) > self.limits.max_files:
                raise ArchiveError(f"{self.label}: more than {self.limits.max_files} files")
        clash = next((p for p in parents if p in self.files), None)
        if clash is not None:
            raise ArchiveError(f"{self.label}: {clash!r} is both a file and a folder")
        self.folders.update(parents)
        if is_dir:
            self.folders.add(name)
        return name


def safe_name(raw: str, label: str) -> str | None:
    """A member's name as a relative POSIX path (`./` parts dropped, a folder's trailing `/`
    too); ArchiveError for a name that could land outside the folder it is unpacked in or
    that no file system takes. None for the root itself."""
    if any(unicodedata.category(c) == "Cc" for c in raw):
        raise ArchiveError(f"{label}: member {raw!r} has control characters in its name")
    if "\\" in raw or raw.startswith("/") or raw[1:2] == ":":
        raise ArchiveError(f"{label}: member {raw!r} has an unsafe path (absolute or '\\')")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{label}: member {raw!r} has an unsafe path ('..')")
    if len(raw) > MAX_NAME_CHARS or any(len(part) > MAX_PART_CHARS for part in parts):
        raise ArchiveError(f"{label}: member {raw[:80]!r}... has too long a name")
    return "/".join(parts) or None


class _Budget:
    """The bytes the archive's members may still expand to, counted on what they produce."""

    def __init__(self, label: str, limits: Limits) -> None:
        self.label, self.left = label, limits.max_unpacked_bytes
        self.limit = limits.max_unpacked_bytes

    def refuse(self) -> ArchiveError:
        return ArchiveError(f"{self.label}: expands to more than {self.limit} bytes")

    def chunks(self, file: IO[bytes]) -> Iterator[bytes]:
        while chunk := file.read(min(_CHUNK, self.left + 1)):
            self.left -= len(chunk)
            if self.left < 0:
                raise self.refuse()
            yield chunk


def _yield_member(member: Member) -> Iterator[Member]:
    yield member
    for _ in member.chunks:  # count (and check) what the caller did not read
        pass


# --- zip -------------------------------------------------------------------------------------


def _zip_members(path: Path, label: str, limits: Limits) -> Iterator[Member]:
    try:
        with path.open("rb") as raw:
            _check_zip_directory(raw, path.stat().st_size, label, limits)
            with zipfile.ZipFile(raw) as archive:
                infos = archive.infolist()
                declared = sum(i.file_size for i in infos if not i.is_dir())
                if declared > limits.max_unpacked_bytes:
                    raise ArchiveError(
                        f"{label}: expands to {declared} bytes, more than "
                        f"{limits.max_unpacked_bytes}"
                    )
                names, budget = _Names(label, limits), _Budget(label, limits)
                for info in infos:
                    name = names.add(info.filename, info.is_dir())
                    _check_zip_mode(info, label)
                    if name is None or info.is_dir():
                        if name is not None:
                            yield Member(name, True)
                        continue
                    if info.flag_bits & _ENCRYPTED:
                        raise ArchiveError(f"{label}: member {name!r} is encrypted")
                    chunks = _zip_chunks(archive, info, name, label, budget)
                    yield from _yield_member(Member(name, False, chunks))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, zlib.error) as exc:
        raise ArchiveError(f"{label}: not a readable zip archive ({exc})") from exc
    except NotImplementedError as exc:  # a compression method zipfile lacks
        raise ArchiveError(f"{label}: {exc}") from exc


def _check_zip_mode(info: zipfile.ZipInfo, label: str) -> None:
    """A Unix-made zip keeps each member's mode in its high 16 bits: links and special files
    are refused (a zip made elsewhere leaves them 0: a plain file or folder)."""
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        what = "a link" if kind == stat.S_IFLNK else "a device or special file"
        raise ArchiveError(f"{label}: member {info.filename!r} is {what}, not a file")


def _zip_chunks(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, label: str, budget: _Budget
) -> Iterator[bytes]:
    """The member's bytes, read one past the size its directory entry declares (zipfile
    stops at the declared size, so only a member that lies produces that byte), with the
    CRC-32 checked here on what was read (zipfile would check it on the extra byte)."""
    one_more = copy.copy(info)
    one_more.file_size = info.file_size + 1
    del one_more.CRC  # zipfile checks no CRC for an entry without one
    size, crc = 0, 0
    with archive.open(one_more) as file:
        for chunk in budget.chunks(file):
            size += len(chunk)
            if size > info.file_size:
                raise ArchiveError(
                    f"{label}: member {name!r} holds more than the {info.file_size} bytes its "
                    "directory entry says"
                )
            crc = zlib.crc32(chunk, crc)
            yield chunk
    if size < info.file_size or crc != info.CRC:
        raise ArchiveError(
            f"{label}: member {name!r} is damaged (its bytes do not match its directory "
            "entry's size and CRC-32)"
        )


_END_OF_DIRECTORY = b"PK\x05\x06"
_DIRECTORY_ENTRY = b"PK\x01\x02"


def _check_zip_directory(raw: IO[bytes], size: int, label: str, limits: Limits) -> None:
    """Count the central directory's entries by walking their headers (46 bytes and three
    lengths each), stopping past `max_entries`, before zipfile turns each into an object.
    zip64 is refused: no archive within a bundle's limits needs it."""
    tail_size = min(size, 22 + 65535)
    raw.seek(size - tail_size)
    tail = raw.read(tail_size)
    at = tail.rfind(_END_OF_DIRECTORY)
    if at < 0 or at + 22 > len(tail):
        raise ArchiveError(f"{label}: not a readable zip archive (no central directory)")
    entries, directory_size, directory_offset = struct.unpack_from("<HII", tail, at + 10)
    if entries == 0xFFFF or 0xFFFFFFFF in (directory_size, directory_offset):
        raise ArchiveError(
            f"{label}: zip64 archives are not taken (a bundle needs no more than "
            f"{limits.max_files} files in 50 MiB); zip it without zip64"
        )
    if entries > limits.max_entries:
        raise ArchiveError(f"{label}: more than {limits.max_entries} members (files and folders)")
    start = size - tail_size + at - directory_size
    if start < 0:
        raise ArchiveError(f"{label}: not a readable zip archive (bad central directory)")
    raw.seek(start)
    directory = raw.read(directory_size)
    counted, offset = 0, 0
    while offset + 46 <= len(directory) and directory[offset : offset + 4] == _DIRECTORY_ENTRY:
        counted += 1
        if counted > limits.max_entries:
            raise ArchiveError(
                f"{label}: more than {limits.max_entries} members (files and folders)"
            )
        name_size, extra_size, comment_size = struct.unpack_from("<HHH", directory, offset + 28)
        offset += 46 + name_size + extra_size + comment_size
    raw.seek(0)


# --- tar.gz ----------------------------------------------------------------------------------


class _CappedGzip:
    """A gzip stream decompressed with a cap on its total output: a read that would pass it
    is refused before it is made, so no read, however large tarfile asks, holds more."""

    def __init__(self, raw: IO[bytes], cap: int, label: str) -> None:
        self.stream = gzip.GzipFile(fileobj=raw, mode="rb")
        self.left, self.cap, self.label = cap, cap, label

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self.left:
            size = self.left + 1
        data = self.stream.read(size)
        self.left -= len(data)
        if self.left < 0:
            raise ArchiveError(
                f"{self.label}: its tar stream expands to more than {self.cap} bytes"
            )
        return data


def _tar_members(path: Path, label: str, limits: Limits) -> Iterator[Member]:
    cap = limits.max_unpacked_bytes + limits.max_entries * _TAR_OVERHEAD_PER_ENTRY + _TAR_OVERHEAD
    try:
        with path.open("rb") as raw:
            stream = _CappedGzip(raw, cap, label)
            # "r|": one pass over the stream, members met in order (no index of them all).
            with tarfile.open(fileobj=stream, mode="r|") as archive:  # type: ignore[call-overload]
                names, budget = _Names(label, limits), _Budget(label, limits)
                for info in archive:
                    name = names.add(info.name, info.isdir())
                    if not (info.isreg() or info.isdir()):
                        what = "a link" if info.issym() or info.islnk() else "a special file"
                        raise ArchiveError(f"{label}: member {info.name!r} is {what}, not a file")
                    if name is None or info.isdir():
                        if name is not None:
                            yield Member(name, True)
                        continue
                    if info.size > budget.left:
                        raise budget.refuse()
                    file = archive.extractfile(info)
                    if file is None:  # pragma: no cover - regular members always have one
                        raise ArchiveError(f"{label}: member {name!r} cannot be read")
                    yield from _yield_member(Member(name, False, budget.chunks(file)))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ArchiveError(f"{label}: not a readable tar.gz archive ({exc})") from exc
