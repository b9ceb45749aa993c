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
    problems = []
    for error in exc.errors(include_url=False)[:MAX_PROBLEMS]:
        loc = [str(part) for part in (*prefix, *error["loc"])]
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
        elif error["type"] == "literal_error" and isinstance(error.get("input"), str):
            allowed = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
            message += _did_you_mean(error["input"], allowed)
        problems.append({"path": ".".join(loc) or "(body)", "message": message})
    if exc.error_count() > MAX_PROBLEMS:
        more = exc.error_count() - MAX_PROBLEMS
        problems.append({"path": "(body)", "message": f"and {more} more problems, not listed"})
    return problems


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
