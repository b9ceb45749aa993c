"""Which Python modules a bundle makes importable, read from its file names alone, so the API
can tell at submission that `mygan.nets` exists without running (or even unpacking) a line of
the researcher's code.

The bundle's root is what a job puts on `sys.path`. A module is a `.py` file or a regular
package (a folder holding `__init__.py`) whose every part is a Python identifier and whose
every enclosing folder is a regular package too: `mygan/nets.py` gives `mygan.nets` when
`mygan/__init__.py` exists. Namespace packages (folders without `__init__.py`) are not listed:
what a spec may name is what plain `import` finds the same way on every Python.
"""

from __future__ import annotations

import keyword
from collections.abc import Iterable

PY_SUFFIX = ".py"
INIT = "__init__"


def importable_modules(files: Iterable[str]) -> list[str]:
    """The dotted names of the modules and packages among `files` (relative POSIX paths),
    sorted."""
    names = set(files)
    found: set[str] = set()
    for name in names:
        if not name.endswith(PY_SUFFIX):
            continue
        parts = name[: -len(PY_SUFFIX)].split("/")
        if parts[-1] == INIT:
            parts = parts[:-1]  # a package: named by its folder (the root's own is no package)
        if not parts or not all(_is_identifier(part) for part in parts):
            continue
        enclosing = (
            "/".join(parts[: i + 1]) + f"/{INIT}{PY_SUFFIX}" for i in range(len(parts) - 1)
        )
        if all(init in names for init in enclosing):
            found.add(".".join(parts))
    return sorted(found)


def has_python(files: Iterable[str]) -> bool:
    return any(name.endswith(PY_SUFFIX) for name in files)


def module_of(reference: str) -> str:
    """The module part of a reference: `mygan.nets:Generator` -> `mygan.nets`."""
    return reference.split(":", 1)[0].strip()


def is_module_path(name: str) -> bool:
    """Whether `name` is a dotted module path at all (`mygan.nets`, not `mygan..nets`)."""
    return bool(name) and all(_is_identifier(part) for part in name.split("."))


def _is_identifier(part: str) -> bool:
    return part.isidentifier() and not keyword.iskeyword(part)
