"""Zipping a folder into a code bundle, in memory, the same bytes each time for the same files.

What is left out: version control (`.git`), bytecode (`__pycache__`, `*.pyc`), virtual
environments (`.venv`, any folder holding `pyvenv.cfg`), `node_modules`, and links (the API
refuses links, and following one could pack files from outside the folder). The archive is
deterministic (names sorted, one timestamp, one mode), so pushing an unchanged folder again
yields the same SHA-256: the same bundle, not a new one.

A folder holding `__init__.py` is a package: it is packed under its own name
(`mygan/nets.py`), so `import mygan` works from the bundle's root; any other folder is packed
as it is, its contents at the root (a project folder holding packages and modules).
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

LEFT_OUT_FOLDERS = frozenset({".git", "__pycache__", ".venv", "node_modules"})
LEFT_OUT_SUFFIXES = (".pyc",)
VENV_MARKER = "pyvenv.cfg"
# One timestamp for every member (zip's earliest), so the bytes depend on the files alone.
_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Packed:
    """A folder packed as a zip: its bytes, the names inside, and the links left out."""

    data: bytes
    names: list[str]
    links: list[str]


def bundle_files(root: Path) -> tuple[list[tuple[str, Path]], list[str]]:
    """(name in the archive, file) for every file the bundle takes, sorted by name; and the
    links left out (relative to `root`)."""
    prefix = f"{root.name}/" if (root / "__init__.py").is_file() else ""
    files: list[tuple[str, Path]] = []
    links: list[str] = []
    for folder, subfolders, names in os.walk(root):
        here = Path(folder)
        kept = []
        for sub in subfolders:
            path = here / sub
            if path.is_symlink():
                links.append(path.relative_to(root).as_posix())
            elif sub not in LEFT_OUT_FOLDERS and not (path / VENV_MARKER).exists():
                kept.append(sub)
        subfolders[:] = kept
        for name in names:
            path = here / name
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                links.append(relative)
            elif path.is_file() and not name.endswith(LEFT_OUT_SUFFIXES):
                files.append((prefix + relative, path))
    return sorted(files), sorted(links)


def zip_folder(root: Path) -> Packed:
    """The folder's bundle files as a deflated zip, built in memory."""
    files, links = bundle_files(root)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, path in files:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o100644 << 16  # a plain file, whatever its mode here
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return Packed(out.getvalue(), [name for name, _ in files], links)
