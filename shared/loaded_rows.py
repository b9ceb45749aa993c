"""ORM objects whose row was read or written without the ORM, attached to a session as if the
ORM had loaded them: no query to attach, none when a column is read, and later changes to
the object flush as usual.

Two hot paths use it: the API's memory of accepted tokens (api/token_cache.py), which hands
a remembered user back without a query, and a job's creation (shared/states.py), which
writes the job and its first event with two plain INSERTs because the unit of work took
longer than the statements themselves on every submission (bench/api.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import ColumnDefault, ColumnElement, inspect
from sqlalchemy.orm import Mapper, Session, make_transient_to_detached

from shared.models import Base

M = TypeVar("M", bound=Base)


@dataclass(frozen=True)
class _Shape:
    """What these functions read of a model's mapping, read once per model: looking it up
    through `inspect` at each call was a good part of their time on the API's hot path."""

    mapper: Mapper[Any]
    keys: tuple[str, ...]  # the column attributes' names, in the mapper's order
    columns: tuple[ColumnElement[Any], ...]  # their table columns, in the same order
    defaults: tuple[tuple[str, ColumnDefault | None], ...]  # each's Python-side default
    primary_key: tuple[str, ...]  # the names of the primary key's attributes, in its order


@cache
def _shape(model: type[Base]) -> _Shape:
    mapper = inspect(model)
    attributes = mapper.column_attrs
    return _Shape(
        mapper=mapper,
        keys=tuple(attribute.key for attribute in attributes),
        columns=tuple(attribute.columns[0] for attribute in attributes),
        defaults=tuple((a.key, a.columns[0].default) for a in attributes),
        primary_key=tuple(mapper.get_property_by_column(c).key for c in mapper.primary_key),
    )


def column_values(row: Base) -> dict[str, Any]:
    """Every column of `row` by attribute name (as the object holds it now); loaded values are
    read from the object's state, an expired one through the attribute (which loads it)."""
    held = inspect(row).dict
    return {key: held[key] if key in held else getattr(row, key) for key in _shape(type(row)).keys}


def mapped_columns(model: type[Base]) -> tuple[tuple[str, ...], tuple[ColumnElement[Any], ...]]:
    """`model`'s column attributes' names and their table columns, in the same order: a Core
    SELECT of the columns gives rows that `attach_as_loaded` turns into objects."""
    shape = _shape(model)
    return shape.keys, shape.columns


def with_defaults(model: type[Base], given: dict[str, Any]) -> dict[str, Any]:
    """`given` completed to every column of `model`: a column left out takes its Python-side
    default (`new_id()`, `0`, `[]`...) as an INSERT by the ORM would, else None."""
    values = dict(given)
    for key, default in _shape(model).defaults:
        if key in values:
            continue
        if default is None:
            values[key] = None
        elif default.is_callable:
            values[key] = default.arg(None)  # type: ignore[attr-defined]
        else:
            values[key] = default.arg  # type: ignore[attr-defined]
    return values


def attach_as_loaded(session: Session, model: type[M], values: dict[str, Any]) -> M:
    """A persistent `model` in `session` holding `values` (every column, with the primary
    key) as its loaded state; no SQL is sent. An object of that identity already in the
    session is returned as it is, as an ORM query would return it.

    The values go straight into the new object's state, as the ORM's own loading puts them:
    setting them one by one through the instrumented attributes (the constructor) took most
    of the time of a job's creation on the API's hot path (bench/api.py)."""
    shape = _shape(model)
    identity = shape.mapper.identity_key_from_primary_key(
        tuple(values[key] for key in shape.primary_key)
    )
    existing = session.identity_map.get(identity)
    if existing is not None:
        return existing  # type: ignore[no-any-return]
    row: M = shape.mapper.class_manager.new_instance()
    inspect(row).dict.update(values)
    make_transient_to_detached(row)  # the values become its committed, loaded state
    session.add(row)
    return row
