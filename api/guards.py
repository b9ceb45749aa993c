"""Checks every request passes before a view runs: ids in URLs have our shape, no NUL
anywhere, and JSON bodies are not nested deeper than any request of ours needs.

A malformed id is a 404 before any query (PostgreSQL refuses a NUL with an error that would
otherwise surface as a 500); a JSON body nested thousands deep would make the parser recurse
until RecursionError, so its depth is counted on the raw bytes first.
"""

from __future__ import annotations

from flask import Flask, request
from werkzeug.routing import BaseConverter

from api.problems import ApiProblem

# The deepest JSON body we accept: a job request is about 4 levels deep; 32 leaves room for
# any request we will add without letting a client make the parser recurse.
MAX_JSON_DEPTH = 32


class IdConverter(BaseConverter):
    """`<id:job_id>`: 32 lowercase hex characters (shared.models.new_id), else 404."""

    regex = "[0-9a-f]{32}"


class NameConverter(BaseConverter):
    """`<name:node>`: a node or user name, letters, digits, `.`, `_`, `-`, up to 100."""

    regex = "[A-Za-z0-9][A-Za-z0-9._@-]{0,99}"


def install(app: Flask) -> None:
    app.url_map.converters["id"] = IdConverter
    app.url_map.converters["name"] = NameConverter
    app.before_request(_check_request)


def _check_request() -> None:
    for name, value in request.args.items(multi=True):
        if "\0" in name or "\0" in value:
            raise ApiProblem(
                400,
                "Invalid query parameter",
                f"{name.replace(chr(0), '')}: must not contain a NUL character",
                errors=[{"path": name.replace("\0", ""), "message": "contains a NUL character"}],
            )
    if request.is_json and (request.content_length or 0) > 0:
        depth = json_depth(request.get_data(cache=True))
        if depth > MAX_JSON_DEPTH:
            raise ApiProblem(
                400,
                "Invalid JSON body",
                f"the body is nested {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted",
            )


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (brackets inside strings do
    not count); runs in one pass without parsing."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest
