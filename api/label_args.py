"""The query parameters that pick jobs by their labels, read the same way by GET /jobs and
GET /compare: `?tag=` (repeatable: every one must match) and `?q=` (text in name or note)."""

from __future__ import annotations

import re

from flask import request

from shared.specs.labels import MAX_TAGS, TAG_PATTERN

# A search text longer than any name (200) cannot match one; a note it could, but a search
# that long is a mistake, not a query.
MAX_SEARCH_LENGTH = 200
_TAG = re.compile(TAG_PATTERN)


def tag_args(problems: list[dict[str, str]]) -> list[str]:
    """Every `?tag=` given, each checked as a tag; a bad one is added to `problems`."""
    tags = request.args.getlist("tag")
    if len(tags) > MAX_TAGS:  # no job has more, so more could match none
        problems.append({"path": "tag", "message": f"at most {MAX_TAGS} tags"})
        return []
    for tag in tags:
        if not _TAG.match(tag):
            problems.append(
                {
                    "path": "tag",
                    "message": f"{tag[:50]!r} is not a tag (1 to 40 of A-Z a-z 0-9 . _ - :)",
                }
            )
    return tags


def label_filters(problems: list[dict[str, str]]) -> tuple[list[str], str | None]:
    """`?tag=` (all) and `?q=`; a bad one is added to `problems`."""
    tags = tag_args(problems)
    text = request.args.get("q") or None
    if text is not None and (len(text) > MAX_SEARCH_LENGTH or "\0" in text):
        problems.append(
            {"path": "q", "message": f"must be at most {MAX_SEARCH_LENGTH} characters, no NUL"}
        )
    return tags, text
