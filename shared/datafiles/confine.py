"""Opening data files so that a link cannot lead a reader out of the data roots.

`roots.check_data_path` resolves a spec's `data.path` once, but the files under it are opened
later, one by one, and any of them (or a folder on the way) may be a symlink to a file outside
the roots, or be swapped for one after the check. So every file and folder the data readers
open goes through `open_file` and `list_folder`, which check the *opened* object: its real
path, read back from the open descriptor (/proc/self/fd on Linux; elsewhere the resolved name,
accepted only when it is the very file that was opened), must lie under the roots in force.
Links that stay inside the roots are followed, as a lab's folder of links into a shared image
pool needs. A hard link cannot be told from the file itself and is not caught: making one
needs write access to a folder on the same file system as its target, so data roots belong
on a file system of their own, apart from secrets.

The roots in force are set with `reading_within(roots, field)` around a job's reads (the
worker does, for a spec's `data.path`). Outside it, a folder's members must lie in the folder
itself, so no reader follows a member out of what it was handed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shared.datafiles.errors import DataFileError

# Opened without blocking (a FIFO planted in a data folder would hang a blocking open) and
# without a controlling terminal; the descriptor is not inherited by processes we start.
_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


@dataclass(frozen=True)
class _Confinement:
    roots: tuple[str, ...]  # real paths
    field: str  # the spec field the data came from, for messages


_current: ContextVar[_Confinement | None] = ContextVar("ganforge_data_roots", default=None)


@contextmanager
def reading_within(roots: Sequence[Path], field: str) -> Iterator[None]:
    """Inside the block, every data file opened must lie under `roots` once opened; a refusal
    names `field` (e.g. spec.data.path) and the member."""
    confinement = _Confinement(tuple(os.path.realpath(root) for root in roots), field)
    token = _current.set(confinement)
    try:
        yield
    finally:
        _current.reset(token)


def roots_in_force() -> tuple[list[Path], str] | None:
    """The (roots, field) of the `reading_within` block in force, or None: for a reader that
    opens files later in a process of its own (a data-loader worker), which enters the same
    block there, since a context variable does not travel to a spawned process."""
    confinement = _current.get()
    if confinement is None:
        return None
    return [Path(root) for root in confinement.roots], confinement.field


def open_file(path: Path, label: str) -> BinaryIO:
    """`path` opened for reading, once proved to be a regular file under the roots in force.

    `label` names the data (the file or folder the user named); every failure is a
    DataFileError naming it, never the server's path."""
    return _open_file(path, label, None, _current.get())


@dataclass(frozen=True)
class FolderFile:
    """A file found in a folder: its name relative to the folder, opened on demand."""

    name: str
    path: Path
    label: str
    confinement: _Confinement

    def open(self) -> BinaryIO:
        """The file opened, once proved to lie where its folder's files may."""
        return _open_file(self.path, self.label, self.name, self.confinement)


def _open_file(
    path: Path, label: str, member: str | None, confinement: _Confinement | None
) -> BinaryIO:
    fd = _open(path, _FLAGS, label, member)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DataFileError(f"{_where(label, member)} is not a regular file")
        _check(fd, path, label, member, confinement)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def list_folder(path: Path, label: str, member: str | None = None) -> list[str]:
    """The names in folder `path`, sorted, read from the folder once proved to lie under the
    roots in force."""
    return sorted(_listing(path, label, member, _current.get())[0])


def folder_files(folder: Path, label: str) -> Iterator[FolderFile]:
    """Each regular file under `folder`, sorted by name parts, recursing into subfolders but
    not into links to folders (as `Path.rglob` did) nor hidden ones (`.git`, macOS's
    `__MACOSX`: never data). Each folder is checked as it is listed, each file when opened.
    Outside `reading_within`, the files must lie within `folder` itself."""
    confinement = _current.get() or _Confinement((os.path.realpath(folder),), "")
    yield from _walk(folder, "", label, confinement, set())


def _walk(
    folder: Path, prefix: str, label: str, confinement: _Confinement, seen: set[tuple[int, int]]
) -> Iterator[FolderFile]:
    names, identity = _listing(folder, label, prefix.rstrip("/") or None, confinement)
    if identity in seen:  # a folder swapped for a link to one above it: no endless walk
        return
    seen.add(identity)
    for name in sorted(names):
        path, relative = folder / name, prefix + name
        try:
            info = os.lstat(path)
        except OSError:
            continue  # gone while we walked
        if stat.S_ISDIR(info.st_mode):
            if not (name.startswith(".") or name == "__MACOSX"):
                yield from _walk(path, relative + "/", label, confinement, seen)
        elif stat.S_ISREG(info.st_mode) or (stat.S_ISLNK(info.st_mode) and path.is_file()):
            yield FolderFile(relative, path, label, confinement)


def _listing(
    path: Path, label: str, member: str | None, confinement: _Confinement | None
) -> tuple[list[str], tuple[int, int]]:
    """The names in folder `path` and the folder's (device, inode), read from the folder
    opened and checked."""
    fd = _open(path, _FLAGS | os.O_DIRECTORY, label, member)
    try:
        _check(fd, path, label, member, confinement)
        info = os.fstat(fd)
        return os.listdir(fd), (info.st_dev, info.st_ino)
    finally:
        os.close(fd)


def _open(path: Path, flags: int, label: str, member: str | None) -> int:
    try:
        return os.open(path, flags)
    except NotADirectoryError:
        raise DataFileError(f"{_where(label, member)} is not a folder") from None
    except PermissionError:  # in a job, the sandbox's refusal: it lies where the job may not read
        raise DataFileError(
            f"{_where(label, member)} cannot be read (permission denied): it lies outside the "
            "data roots or is closed to the job's account"
        ) from None
    except OSError as exc:  # the reason alone: the exception's text holds the server's path
        raise DataFileError(f"{_where(label, member)} cannot be read ({exc.strerror})") from None


def _check(
    fd: int, path: Path, label: str, member: str | None, confinement: _Confinement | None
) -> None:
    """DataFileError unless the object open as `fd` lies under the confinement's roots."""
    if confinement is None:
        return
    real = _real_path(fd, path)
    if real is None or not any(_is_under(real, root) for root in confinement.roots):
        if confinement.field:
            raise DataFileError(
                f"{confinement.field}: {_where(label, member)} points outside the data roots "
                "(GANFORGE_DATA_ROOTS) through a link; copy the file in, or upload the data"
            )
        raise DataFileError(f"{_where(label, member)} points outside {label} through a link")


def _real_path(fd: int, path: Path) -> str | None:
    """Where the open object `fd` lies: the kernel's own answer on Linux; elsewhere the
    resolved name, if it still is the object opened (else None: it changed under us)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        pass
    resolved = os.path.realpath(path)
    try:
        named, opened = os.stat(resolved), os.fstat(fd)
    except OSError:
        return None
    return resolved if (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino) else None


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _where(label: str, member: str | None) -> str:
    return f"member {member!r} of {label}" if member else label
