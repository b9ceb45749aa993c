"""Which worker folders a job may read: only under the roots an operator configures.

A spec's `data.path` names a file on the worker's disk, which holds every user's data (and
the worker's own secrets). So a path is accepted only under `GANFORGE_DATA_ROOTS` (none by
default: uploads and `datasets/` keys are the way in), after `..` and symlinks are resolved,
and the refusal reads the same whether or not the path exists, so it reveals nothing.
The API checks at submission (resolving what its own disk can see) and the worker checks
again before it opens anything, on the disk that counts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


class DataPathRefusedError(ValueError):
    """A data path outside every configured root; the message is safe to show the user."""


def parse_roots(value: str) -> tuple[Path, ...]:
    """GANFORGE_DATA_ROOTS: absolute folders separated by `:` (os.pathsep) or commas."""
    parts = [p.strip() for chunk in value.split(",") for p in chunk.split(os.pathsep)]
    return tuple(Path(p) for p in parts if p)


def check_data_path(path: str, roots: Sequence[Path]) -> Path:
    """The resolved path when it lies under one of `roots`; else DataPathRefusedError."""
    resolved = Path(os.path.realpath(path)) if os.path.isabs(path) else None
    if resolved is not None:
        for root in roots:
            if resolved.is_relative_to(os.path.realpath(root)):
                return resolved
    allowed = ", ".join(str(r) for r in roots) or "none are configured"
    raise DataPathRefusedError(
        "not a path this service may read: data paths must be absolute and lie under a "
        f"data root (GANFORGE_DATA_ROOTS: {allowed}); upload the data instead "
        "(POST /api/v1/datasets) or name a store key under datasets/"
    )
