"""Errors of job requests as a person reads them: each bad field by its JSON path, with the
reason, and for an unknown field or value the closest valid name.

Kept apart from the spec models (shared/specs/train.py): this is about wording, not about what a
valid spec is.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable
from typing import Any, get_args

from pydantic import BaseModel, ValidationError


class SpecError(ValueError):
    """A job request is invalid; `problems` lists each bad field as {path, message}."""

    def __init__(self, problems: list[dict[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{p['path']}: {p['message']}" for p in problems))


# Problems listed for one request: each unknown field costs a search for the closest name,
# and a 1 MiB body of 60,000 unknown fields took 29 s of the API's time to list them all.
MAX_PROBLEMS = 20


def problems_from(
    exc: ValidationError, prefix: tuple[str, ...] = (), model: type[BaseModel] | None = None
) -> list[dict[str, str]]:
    """Turn pydantic's errors into {path, message} pairs a person can act on, suggesting the
    closest valid name for an unknown field or value; the first MAX_PROBLEMS of them, and a
    last one saying how many more there are."""
    problems: list[dict[str, str]] = []
    allowed_at: dict[str, list[str]] = {}  # a union of literals fails once per member
    for error in exc.errors(include_url=False)[:MAX_PROBLEMS]:
        # A union's members appear in the location as pydantic's tags for them
        # ("literal['mnist','npz']", "function-after[...]"): not a field a person can find.
        loc = [str(part) for part in (*prefix, *error["loc"]) if not _is_union_tag(part)]
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            name = str(error["loc"][-1])
            known = _field_names(model) if model is not None else frozenset()
            message = f"unknown field `{name}`" + _did_you_mean(name, known)
        elif error["type"] == "value_error":
            # Our checks across fields start with the field they blame ("model.pack: ...").
            message = str(error.get("ctx", {}).get("error", message))
            blamed = blamed_field(message)
            if blamed:
                loc.append(blamed)
                message = message[len(blamed) + 2 :]
        elif error["type"] == "literal_error":
            expected = str(error.get("ctx", {}).get("expected", ""))
            # Names are quoted ('mnist' or 'npz'); numbers are not (28, 32 or 64).
            allowed = re.findall(r"'([^']*)'", expected) or re.findall(r"-?\d+", expected)
            path = ".".join(loc) or "(body)"
            if path in allowed_at:  # another member of the same union: one problem for all
                allowed_at[path] += allowed
                problem = next(p for p in problems if p["path"] == path)
                problem["message"] = _one_of(allowed_at[path], error.get("input"))
                continue
            allowed_at[path] = allowed
            message = _one_of(allowed, error.get("input"))
        elif error["type"] in _WRONG_TYPE and "input" in error:
            message += f", got {_shown(error['input'])}"
        problems.append({"path": ".".join(loc) or "(body)", "message": message})
    if exc.error_count() > MAX_PROBLEMS:
        more = exc.error_count() - MAX_PROBLEMS
        problems.append({"path": "(body)", "message": f"and {more} more problems, not listed"})
    return problems


# Pydantic's error types for a value of the wrong type: the message then says what was given.
_WRONG_TYPE = frozenset(
    {"int_type", "float_type", "bool_type", "string_type", "list_type", "dict_type",
     "model_type", "int_from_float", "int_parsing", "float_parsing", "bool_parsing"}
)  # fmt: skip


def _is_union_tag(part: object) -> bool:
    return isinstance(part, str) and "[" in part


def _one_of(allowed: list[str], given: object) -> str:
    """ "must be one of `a`, `b` or `c`, got 'x'; did you mean `a`?" for a literal field."""
    quoted = [f"`{name}`" for name in allowed]
    listed = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    message = f"must be one of {listed}, got {_shown(given)}"
    return message + (_did_you_mean(given, allowed) if isinstance(given, str) else "")


def _shown(value: object) -> str:
    """A client's value as a message quotes it: its JSON type named, long text cut."""
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:40] + "..."
        return f"{text!r} (a string)"
    if isinstance(value, bool | int | float) or value is None:
        return repr(value)
    return f"a {'list' if isinstance(value, list) else type(value).__name__}"


_BLAMED_FIELD = re.compile(r"([a-z_]+(?:\.[a-z_]+)*): ")
# Longer than any field path of ours: only this much of a message is searched for one, so
# a message quoting a megabyte of a client's text is not walked back character by character.
_MAX_FIELD_PATH = 100


def blamed_field(message: str) -> str | None:
    """The field a message of ours names first ("model.pack: ..."), if it names one."""
    found = _BLAMED_FIELD.match(message[: _MAX_FIELD_PATH + 2])
    return found.group(1) if found else None


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


@functools.cache
def _field_names(model: type[BaseModel]) -> frozenset[str]:
    """Every field name of `model` and the models nested in it (the vocabulary a typo is
    matched against; a typo's closest name is almost always one of its siblings)."""
    names: set[str] = set()
    todo, seen = [model], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for name, field in current.model_fields.items():
            names.add(name)
            todo.extend(_models_in(field.annotation))
    return frozenset(names)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]
