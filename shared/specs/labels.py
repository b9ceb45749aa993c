"""A job's labels: the tags and the note a researcher files runs under, set at submission
(POST /api/v1/jobs) or later (PATCH /api/v1/jobs/<id>); checked here, once, for both.

A tag is short and plain (letters, digits, `.`, `_`, `-`, `:`) so that it can be typed in a
shell and in a query string without quoting, and so that the JSON text of a job's tag list
has no escapes: shared/jobs/tags.py relies on that to filter by tag with one LIKE that
SQLite and PostgreSQL both run.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationError, WithJsonSchema

from shared.specs.data import StrictModel
from shared.specs.errors import SpecError, problems_from

TAG_PATTERN = r"^[A-Za-z0-9._:-]{1,40}$"
MAX_TAGS = 20
MAX_NOTE_LENGTH = 2000
_TAG = re.compile(TAG_PATTERN)


def _check_tag(tag: str) -> str:
    if not _TAG.match(tag):
        raise ValueError(f"a tag is 1 to 40 letters, digits, `.`, `_`, `-` or `:`; got {tag!r}")
    return tag


Tag = Annotated[
    str, AfterValidator(_check_tag), WithJsonSchema({"type": "string", "pattern": TAG_PATTERN})
]


def _unique(tags: list[str]) -> list[str]:
    """Tags are a set that keeps the order given: `a b a` is `a b`, not an error."""
    return list(dict.fromkeys(tags))


Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS), AfterValidator(_unique)]
Note = Annotated[str, Field(max_length=MAX_NOTE_LENGTH)]


class JobLabels(StrictModel):
    """The body of PATCH /api/v1/jobs/<id>: what it gives replaces the job's own; what it
    leaves out stays. `tags` is the whole new list ([] removes them all); `note` "" clears."""

    tags: Tags | None = None
    note: Note | None = None


def validate_labels(body: Any) -> JobLabels:
    """The labels a PATCH body gives; SpecError naming each bad field, or the body itself
    when it gives neither (a PATCH that changes nothing is a mistake worth telling)."""
    try:
        labels = JobLabels.model_validate(body, strict=True)
    except ValidationError as exc:
        raise SpecError(problems_from(exc, model=JobLabels)) from None
    if labels.tags is None and labels.note is None:
        raise SpecError([{"path": "(body)", "message": "give `tags`, `note` or both"}])
    return labels
