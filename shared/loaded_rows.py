"""ORM objects whose row was read or written without the ORM, attached to a session as if the
ORM had loaded them: no query to attach, none when a column is read, and later changes to
the object flush as usual.

Two hot paths use it: the API's memory of accepted tokens (api/token_cache.py), which hands
a remembered user back without a query, and a job's creation (shared/states.py), which
writes the job and its first event with two plain INSERTs because the unit of work took
longer than the statements themselves on every submission (bench/api.py).
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import inspect
from sqlalchemy.orm import Session, make_transient_to_detached

from shared.models import Base

M = TypeVar("M", bound=Base)


def column_values(row: Base) -> dict[str, Any]:
    """Every column of `row` by attribute name (as the object holds it now)."""
    return {column.key: getattr(row, column.key) for column in inspect(row).mapper.column_attrs}


def with_defaults(model: type[Base], given: dict[str, Any]) -> dict[str, Any]:
    """`given` completed to every column of `model`: a column left out takes its Python-side
    default (`new_id()`, `0`, `[]`...) as an INSERT by the ORM would, else None."""
    values = dict(given)
    for attribute in inspect(model).column_attrs:
        if attribute.key in values:
            continue
        default = attribute.columns[0].default
        if default is None:
            values[attribute.key] = None
        elif default.is_callable:
            values[attribute.key] = default.arg(None)  # type: ignore[attr-defined]
        else:
            values[attribute.key] = default.arg  # type: ignore[attr-defined]
    return values


def attach_as_loaded(session: Session, model: type[M], values: dict[str, Any]) -> M:
    """A persistent `model` in `session` holding `values` (every column, with the primary
    key) as its loaded state; no SQL is sent."""
    row = model(**values)
    make_transient_to_detached(row)
    session.add(row)
    return row
