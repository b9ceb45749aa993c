"""gunicorn's own refusals (a request line or headers past its limits, a header it cannot
parse) answered as problem+json, like every refusal the app writes.

gunicorn writes these before the app sees the request, through `gunicorn.util.write_error`,
which has no setting or hook: its HTML page was the one answer of the API a client could not
parse as a problem. `install()` (called by api/gunicorn_conf.py in the master, before it
forks) replaces that function; the status, reason and gunicorn's own message are kept.
"""

from __future__ import annotations

import json
import socket

from gunicorn import util

from api.media_types import PROBLEM_JSON


def write_problem(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """What gunicorn.util.write_error writes, as a problem document."""
    detail = mesg or reason
    body = json.dumps(
        {"type": "about:blank", "title": reason, "status": status_int, "detail": detail}
    ).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: {PROBLEM_JSON}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def install() -> None:
    util.write_error = write_problem  # type: ignore[assignment]
