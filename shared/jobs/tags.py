"""Finding jobs by their labels: every tag of a list, and a text in the name or the note.

Why a JSON column and not a job_tags table: a job's JSON (its poll, the most frequent
request) is read as one row (shared/jobs/requests.JOB_VIEW_COLUMNS), and a table would add a
query or a join to each. Filtering needs no JSON operators, which SQLite and PostgreSQL spell
differently (json_each, jsonb `?`; a `JSON` column has neither on PostgreSQL): a tag can hold
no `"` or `\\` (shared/specs/labels.py), so the column's text holds `"T"` exactly when `T` is
one of its elements, and one LIKE on that text runs the same on both. It scans the caller's
jobs (the owner index narrows them first), which at a lab's scale of thousands is fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, String, cast, func, or_

from shared.models import Job

# A query over jobs, as whichever query the caller built (its columns are theirs).
Query = TypeVar("Query", bound=Select[Any])


def with_tags(query: Query, tags: Sequence[str]) -> Query:
    """`query` keeping the jobs that have every one of `tags`."""
    text = cast(Job.tags, String)
    for tag in tags:
        query = query.where(text.contains(f'"{tag}"', autoescape=True))
    return query


def matching_text(query: Query, text: str) -> Query:
    """`query` keeping the jobs whose name or note holds `text`, whatever its case."""
    needle = text.lower()
    return query.where(
        or_(
            func.lower(Job.name).contains(needle, autoescape=True),
            func.lower(Job.note).contains(needle, autoescape=True),
        )
    )
