"""The hostile battery's wire: one request sent exactly as built, and the judgement of its
answer against what the case expects.

Requests go over raw `http.client` (not `requests`), because several cases need what a
friendly client will not send: a chunked body with no Content-Length, a Content-Length that
lies, header values with odd bytes, methods no one uses. An answer that is an error (4xx or
5xx) must be RFC 9457 problem+json with a title and a detail; one that succeeds must be JSON.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

PROBLEM_JSON = "application/problem+json"
# How much of an answer is read: any problem document (one naming thousands of fields runs to
# hundreds of KB), never a whole artifact or stream.
READ_LIMIT = 16 * 1024 * 1024
# What a case may take by default before it counts as failed, answer included: far above any
# refusal (milliseconds), far below what a hung thread looks like.
DEFAULT_BOUND_S = 2.0

Body = bytes | Iterable[bytes] | None
# Header values may be bytes: a value no text encoding would produce goes out as it is.
Headers = Mapping[str, str | bytes]


@dataclass
class Answer:
    """What came back: status (None when nothing did), lower-cased headers, the first
    READ_LIMIT bytes of the body, seconds from sending to the last byte read, and `error`
    when the exchange failed (timeout, reset). `notes` holds figures a case measured."""

    status: int | None
    headers: dict[str, str]
    body: bytes
    seconds: float
    error: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def summary(self) -> str:
        """One line of what came back, for the failure list."""
        if self.error is not None:
            return f"no answer after {self.seconds:.2f} s ({self.error})"
        text = self.body[:160].decode("utf-8", "replace").replace("\n", " ")
        kind = self.content_type or "(no Content-Type)"
        return f"{self.status} {kind} in {self.seconds:.2f} s: {text}"


def send(
    base_url: str,
    method: str,
    path: str,
    headers: Headers | None = None,
    body: Body = None,
    timeout: float = 30.0,
) -> Answer:
    """Send one request on a fresh connection. A body that is an iterable of chunks goes
    out with Transfer-Encoding: chunked and no Content-Length."""
    chunked = body is not None and not isinstance(body, bytes)

    def write(connection: http.client.HTTPConnection) -> None:
        connection.request(
            method, path, body=body, headers=dict(headers or {}), encode_chunked=chunked
        )

    return _exchange(base_url, write, timeout)


def send_declared(
    base_url: str,
    method: str,
    path: str,
    headers: Headers,
    body: bytes,
    declared_length: int,
    timeout: float = 30.0,
) -> Answer:
    """Send `body` under a Content-Length of `declared_length` (which may lie)."""

    def write(connection: http.client.HTTPConnection) -> None:
        connection.putrequest(method, path)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(declared_length))
        connection.endheaders(body)

    return _exchange(base_url, write, timeout)


def _exchange(
    base_url: str, write: Callable[[http.client.HTTPConnection], None], timeout: float
) -> Answer:
    """One request written by `write` on a fresh connection, and what came back (or why
    nothing did), timed from the first byte sent."""
    url = urlparse(base_url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=timeout)
    began = time.perf_counter()
    try:
        write(connection)
        response = connection.getresponse()
        payload = response.read(READ_LIMIT)
        answered = {name.lower(): value for name, value in response.getheaders()}
        return Answer(response.status, answered, payload, time.perf_counter() - began)
    except (OSError, http.client.HTTPException) as error:
        return Answer(
            None, {}, b"", time.perf_counter() - began, f"{type(error).__name__}: {error}"
        )
    finally:
        connection.close()


@dataclass(frozen=True)
class Expect:
    """What holding means for one case.

    `status`: the answers accepted. Any answer but a success must be problem+json with a title and a
    detail and, when `field` is given, name that field (a dotted path such as
    `spec.data.key`, in the detail or an `errors` entry); a success must be JSON unless
    `content_type` says otherwise. `bound_s`: the most the exchange may take. `write`: the
    request tries to create something, so a refusal must leave nothing stored.
    """

    status: tuple[int, ...]
    field: str | None = None
    bound_s: float = DEFAULT_BOUND_S
    write: bool = False
    content_type: str = "application/json"


def judge(answer: Answer, expect: Expect) -> list[str]:
    """Why the answer does not hold; empty when it does."""
    if answer.error is not None or answer.status is None:
        return [answer.summary()]
    reasons = []
    if answer.status not in expect.status:
        wanted = " or ".join(str(s) for s in expect.status)
        reasons.append(f"status {answer.status}, expected {wanted}")
    if answer.seconds > expect.bound_s:
        reasons.append(f"took {answer.seconds:.2f} s, bound {expect.bound_s:g} s")
    if answer.status >= 300:  # refusals and redirects alike explain themselves
        reasons.extend(_problem_reasons(answer, expect.field))
    elif answer.status < 300 and not answer.content_type.startswith(expect.content_type):
        reasons.append(f"Content-Type {answer.content_type!r}, expected {expect.content_type}")
    return reasons


def _problem_reasons(answer: Answer, field_path: str | None) -> list[str]:
    if not answer.content_type.startswith(PROBLEM_JSON):
        return [f"Content-Type {answer.content_type!r}, not {PROBLEM_JSON}"]
    document = answer.json()
    if not isinstance(document, dict):
        return ["the problem document is not a JSON object"]
    missing = [key for key in ("title", "detail") if not isinstance(document.get(key), str)]
    if missing:
        return [f"the problem document has no {' or '.join(missing)}"]
    if field_path is not None and not names_field(document, field_path):
        return [f"the problem does not name {field_path}: {document['detail'][:120]!r}"]
    return []


def names_field(document: dict[str, Any], field_path: str) -> bool:
    """Whether a problem document names the field: its full path, or its leaf said in the
    message of an error on its parent (`spec.data`: "key must be ..."), in any case."""
    listed = document.get("errors")
    errors = listed if isinstance(listed, list) else []
    texts = [str(document.get("detail", ""))]
    texts += [f"{e.get('path', '')}: {e.get('message', '')}" for e in errors if isinstance(e, dict)]
    # Case does not count: header names are case-insensitive (gunicorn says IDEMPOTENCY-KEY),
    # and the API's field paths are lower case.
    texts = [text.lower() for text in texts]
    field_path = field_path.lower()
    if any(field_path in text for text in texts):
        return True
    parent, _, leaf = field_path.rpartition(".")
    return bool(parent) and any(parent in text and leaf in text for text in texts)
