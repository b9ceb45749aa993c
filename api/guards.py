"""Checks every request passes before a view runs: ids in URLs have our shape, no NUL
anywhere, and JSON bodies are not nested deeper than any request of ours needs.

A malformed id is a 404 before any query (PostgreSQL refuses a NUL with an error that would
otherwise surface as a 500); a JSON body nested thousands deep would make the parser recurse
until RecursionError, so its depth is counted on the raw bytes first, sent chunked or not.
"""

from __future__ import annotations

import time

from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import BaseConverter

from api.problems import ApiProblem

# A chunked body refused as too long is read on and dropped, up to this many more bytes and
# seconds, so that the client, still sending, reads our 413 instead of a reset connection.
DRAIN_BYTES = 8 * 1024 * 1024
DRAIN_S = 2.0
_DRAIN_CHUNK = 64 * 1024

# The deepest JSON body we accept: a job request is about 4 levels deep; 32 leaves room for
# any request we will add without letting a client make the parser recurse.
MAX_JSON_DEPTH = 32


class IdConverter(BaseConverter):
    """`<id:job_id>`: 32 lowercase hex characters (shared.models.new_id), else 404."""

    regex = "[0-9a-f]{32}"


class ShaConverter(BaseConverter):
    """`<sha:code_id>`: a SHA-256 in 64 lowercase hex characters (a code bundle's id), else 404."""

    regex = "[0-9a-f]{64}"


class NameConverter(BaseConverter):
    """`<name:node>`: a node or user name, letters, digits, `.`, `_`, `-`, up to 100."""

    regex = "[A-Za-z0-9][A-Za-z0-9._@-]{0,99}"


def install(app: Flask) -> None:
    app.url_map.converters["id"] = IdConverter
    app.url_map.converters["name"] = NameConverter
    app.url_map.converters["sha"] = ShaConverter
    app.before_request(_check_request)


def _check_request() -> None:
    if "\0" in request.path:  # `%00` in a free-form part such as an artifact's name
        raise ApiProblem(404, "Not Found", "no resource has a NUL character in its path")
    for name, value in request.args.items(multi=True):
        if "\0" in name or "\0" in value:
            raise ApiProblem(
                400,
                "Invalid query parameter",
                f"{name.replace(chr(0), '')}: must not contain a NUL character",
                errors=[{"path": name.replace("\0", ""), "message": "contains a NUL character"}],
            )
    if request.is_json:
        # Read whether or not the client said how long the body is: a chunked body has no
        # Content-Length, and Werkzeug stops reading it at MAX_CONTENT_LENGTH, silently.
        raw = request.get_data(cache=True)
        limit = request.max_content_length
        if request.content_length is None and limit is not None and len(raw) >= limit:
            _drain_chunked_body()
            raise RequestEntityTooLarge(f"JSON bodies are limited to {limit} bytes")
        # Fewer opening brackets than the limit cannot nest past it: a job's body has a
        # handful, so the byte loop (a few % of a submission's time) runs only for the rest.
        if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
            return
        depth = json_depth(raw)
        if depth > MAX_JSON_DEPTH:
            raise ApiProblem(
                400,
                "Invalid JSON body",
                f"the body is nested {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted",
            )


def _drain_chunked_body() -> None:
    """Read the rest of a refused chunked body and drop it (bounded by DRAIN_BYTES and
    DRAIN_S): closing a connection with unread bytes resets it, and a client still writing
    would see a broken pipe, not the answer."""
    stream = request.environ.get("wsgi.input")
    if stream is None:
        return
    deadline, left = time.monotonic() + DRAIN_S, DRAIN_BYTES
    while left > 0 and time.monotonic() < deadline:
        chunk = stream.read(min(_DRAIN_CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)


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
