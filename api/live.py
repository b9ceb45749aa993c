"""A job as it happens: its feed as Server-Sent Events, and its log.

`GET /api/v1/jobs/<id>/events` and `GET /api/v1/jobs/<id>/logs` stream when the client asks
for `text/event-stream` first in `Accept` (anything else, `*/*` included, gets the JSON
answer, so generic clients and the contract tests never open a stream). A stream polls the
database every second (api/live_feed.py), sends a comment every 15 s of quiet so
proxies keep it open, and closes after STREAM_MAX_S with `retry:` set: the client reconnects
at once with `Last-Event-ID` and misses nothing, while gunicorn's threads come back.

A stream holds a request thread while it is open, so streams are admitted only within the
bounds of api/stream_slots.py (per process, leaving threads for other requests; per token,
over all processes), else 429. A stream gives its slot back when it ends, and when its client
goes: a closed connection is noticed between polls, not only at the next keep-alive.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

from flask import Blueprint, Response, current_app, request, stream_with_context

from api.auth import current_user, require_user
from api.counters import count_storage_error
from api.live_feed import CursorError, FeedCursor, FeedMessage, JobFeed, find_log, log_text
from api.problems import ApiProblem
from api.serializers import artifact_json, event_json
from api.state import db_session, settings, storage
from api.stream_slots import admit_stream
from shared.jobs import requests as jobs

bp = Blueprint("live", __name__, url_prefix="/api/v1/jobs")
bp.before_request(require_user)

EVENT_STREAM = "text/event-stream"
# A stream holds one gunicorn thread; after this long it ends (the client reconnects with
# Last-Event-ID) so that no stream keeps a thread for hours, whatever its client does.
STREAM_MAX_S = 300.0
# Seconds of quiet before a keep-alive comment: under the 30-60 s idle timeouts of proxies.
KEEPALIVE_S = 15.0
# Milliseconds a client waits before it reconnects after the stream ends.
RETRY_MS = 1000
# Tests put a function here in app.config to stand in for the feed's sleep between polls.
FEED_WAIT_CONFIG = "GANFORGE_FEED_WAIT"


def wants_stream() -> bool:
    """The client asked for Server-Sent Events before anything else."""
    return request.accept_mimetypes.best == EVENT_STREAM


def feed_response(job_id: str, kinds: Collection[str], *, log_from_start: bool) -> Response:
    """The job's feed of `kinds` as a stream of Server-Sent Events."""
    session = db_session()
    jobs.get_job(session, current_user(), job_id)  # a 404 now, before the stream starts
    raw_cursor = request.headers.get("Last-Event-ID") or request.args.get("after")
    try:
        after = FeedCursor.parse(raw_cursor)
    except CursorError as error:
        raise ApiProblem(
            400,
            "Invalid query parameter",
            str(error),
            errors=[{"path": "after", "message": "not a position this API handed out"}],
        ) from None
    session.close()  # each poll opens its own; no connection is held between them
    feed = JobFeed(
        settings().database_url,
        storage(),
        job_id,
        kinds,
        after,
        log_from_start=log_from_start,
        on_storage_error=lambda: count_storage_error("job feed"),
    )
    wait = current_app.config.get(FEED_WAIT_CONFIG, time.sleep)
    gone = client_gone_probe(request.environ)
    slot = admit_stream()  # last: a 404 or 400 above takes no slot

    def pause(seconds: float) -> None:
        """The feed's wait between polls, which also keeps the stream's lease and ends the
        stream when its client has gone (else noticed only at the next write)."""
        if gone():
            raise ClientGoneError
        slot.keep()
        wait(seconds)

    def stream() -> Iterator[str]:
        try:
            yield f"retry: {RETRY_MS}\n\n"
            for message in feed.follow(STREAM_MAX_S, KEEPALIVE_S, pause):
                yield ": keep-alive\n\n" if message is None else encode(message)
        except ClientGoneError:
            return
        finally:
            slot.release()

    response = Response(stream_with_context(stream()), mimetype=EVENT_STREAM)
    # Also when the server closes the response without reading it (a HEAD): the generator's
    # own `finally` runs only once it has started.
    response.call_on_close(slot.release)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass each message on at once
    return response


class ClientGoneError(Exception):
    """The stream's client closed its connection."""


def client_gone_probe(environ: Mapping[str, Any]) -> Callable[[], bool]:
    """A check that the request's client has closed its connection: it has nothing more to
    send on a stream, so a read that finds the end of the connection means it went. Peeks,
    never reads, and never blocks. Under servers that do not hand the socket over (the test
    client), or over TLS (where bytes read are not the request's), it always says no."""
    sock = environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket) or isinstance(sock, ssl.SSLSocket):
        return lambda: False
    if sock.gettimeout() not in (None, 0.0):  # a timeout would make the peek wait
        return lambda: False

    def gone() -> bool:
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:  # nothing to read: still there
            return False
        except OSError:  # reset or already closed
            return True

    return gone


def encode(message: FeedMessage) -> str:
    """One Server-Sent Event: its cursor as the id, its kind as the event name, JSON data on
    one line (json.dumps escapes newlines)."""
    data = json.dumps(_data(message), separators=(",", ":"))
    return f"id: {message.cursor}\nevent: {message.kind}\ndata: {data}\n\n"


def _data(message: FeedMessage) -> dict[str, Any]:
    if message.kind == "state":
        return event_json(message.item)
    if message.kind == "artifact":
        return artifact_json(message.item)
    return dict(message.item)


@bp.get("/<id:job_id>/logs")
def logs(job_id: str) -> Response | dict[str, Any]:
    """The job's log.txt as stored so far (rank 0 uploads it within seconds of each line):
    JSON `{lines, next_offset}`, or the text itself for `Accept: text/plain`; `?offset=`
    starts at a byte offset an earlier answer gave. `text/event-stream` follows it."""
    if wants_stream():
        return feed_response(job_id, ("log",), log_from_start=True)
    offset = _offset()
    session = db_session()
    jobs.get_job(session, current_user(), job_id)
    text, next_offset = log_text(storage(), find_log(session, job_id), offset)
    if request.accept_mimetypes.best_match(["application/json", "text/plain"]) == "text/plain":
        return Response(text, mimetype="text/plain", headers={"X-Next-Offset": str(next_offset)})
    return {"lines": text.splitlines(), "next_offset": next_offset}


def _offset() -> int:
    raw = request.args.get("offset") or "0"
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ApiProblem(
            400,
            "Invalid query parameter",
            f"offset: must be a non-negative integer, got {raw[:40]!r}",
            errors=[{"path": "offset", "message": "must be a non-negative integer"}],
        )
    return int(raw)
