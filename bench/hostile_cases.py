"""The hostile battery's vocabulary: the target API, a case (a request, or a few, and what
holding means for it), its outcome, the builders every category uses, and the legit controls
(so that a battery refusing everything cannot pass).

The categories live beside it: bench/hostile_input.py (what a request carries: patterns,
parsers, the known 500s), bench/hostile_data.py (lying archives, data paths),
bench/hostile_access.py (tokens, other users' objects,
headers and methods), bench/hostile_streams.py and bench/hostile_worker.py. Routes and field
names are those of api/ and of the OpenAPI document the running API serves.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import hostile_files as files
from bench.hostile_http import Answer, Body, Expect, Headers, send
from bench.hostile_memory import ApiMemory

JOBS, DATASETS, TOKENS = "/api/v1/jobs", "/api/v1/datasets", "/api/v1/tokens"
CODE = "/api/v1/code"
# Labels of the jobs the battery keeps queued as targets: no node ever has them, so they
# never run (submitted before the run's one worker registers; see bench/hostile.py).
PARKED = {"lane": "parked"}
BOUNDARY = "hostile-battery-boundary"
# The largest JSON body the API reads (api/app.py MAX_CONTENT_LENGTH).
BODY_LIMIT = 1024 * 1024
# gunicorn refuses request lines longer than 4094 bytes; query values stay below.
LONG_QUERY = 4000


@dataclass
class Target:
    """The running API and what the battery made in it: tokens by user (alice, bob, and
    alice's expired and revoked ones), alice's objects by name (job, dataset, token), the
    data root the API was given and a folder outside it, and the API processes' memory."""

    base_url: str
    tokens: dict[str, str]
    ids: dict[str, str]
    data_root: Path
    outside: Path
    memory: ApiMemory

    def request(
        self,
        method: str,
        path: str,
        *,
        user: str | None = "alice",
        headers: Headers | None = None,
        body: Body = None,
        json_body: Any = None,
        timeout: float = 10.0,
        keep: bool = False,
    ) -> Answer:
        """Send as `user` (None: no Authorization). A job this creates is cancelled at once
        unless `keep`, so that no stray job waits for the run's worker."""
        sent: dict[str, str | bytes] = {}
        if user is not None:
            sent["Authorization"] = f"Bearer {self.tokens[user]}"
        if json_body is not None:
            sent["Content-Type"] = "application/json"
            body = json.dumps(json_body).encode()
        sent.update(headers or {})
        answer = send(self.base_url, method, path, sent, body, timeout)
        if (method, path, answer.status) == ("POST", JOBS, 201) and not keep:
            created = answer.json() or {}
            send(self.base_url, "POST", f"{JOBS}/{created.get('id')}/cancel", _auth(sent), None)
        return answer


@dataclass(frozen=True)
class Case:
    """One hostile request. `series`: cases of growing size; once one is too slow, the
    larger ones are not sent (each would hold an API process longer). `check`: a further
    condition on the answer, returning why it fails, or None. `setup`: requests sent first,
    before the stored state is read (the first use of an idempotency key)."""

    category: str
    name: str
    send: Callable[[Target], Answer]
    expect: Expect
    series: str | None = None
    check: Callable[[Answer], str | None] | None = None
    setup: Callable[[Target], object] | None = None


@dataclass
class Outcome:
    """How one case went: whether it held, why not, what came back, how long it took, and
    any figures it measured."""

    category: str
    name: str
    held: bool
    reasons: list[str]
    got: str
    seconds: float
    notes: dict[str, Any] = field(default_factory=dict)


def _auth(headers: Headers) -> Headers:
    return {k: v for k, v in headers.items() if k == "Authorization"}


def call(
    method: str,
    path: str,
    *,
    user: str | None = "alice",
    headers: Headers | None = None,
    body: Body = None,
    json_body: Any = None,
) -> Callable[[Target], Answer]:
    def go(target: Target) -> Answer:
        return target.request(
            method, path, user=user, headers=headers, body=body, json_body=json_body
        )

    return go


def multipart(
    fields: dict[str, bytes], file: tuple[bytes, bytes] | None
) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body built byte by byte (a NUL in a field goes through as is)."""
    parts: list[bytes] = []
    for name, value in fields.items():
        field_head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        parts.append(field_head.encode() + value + b"\r\n")
    if file is not None:
        filename, data = file
        file_head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="'.encode()
            + filename
            + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        parts.append(file_head + data + b"\r\n")
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(parts), {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def upload(
    filename: str | bytes,
    data: bytes,
    name: bytes = b"hostile",
    *,
    user: str | None = "alice",
    headers: Headers | None = None,
) -> Callable[[Target], Answer]:
    raw_name = filename.encode() if isinstance(filename, str) else filename
    body, form_headers = multipart({"name": name}, (raw_name, data))
    return call("POST", DATASETS, user=user, body=body, headers={**form_headers, **(headers or {})})


def train_body(data: dict[str, Any], **spec: Any) -> dict[str, Any]:
    model = {"family": "dcgan", "width": 8} if data.get("source") == "images" else "mlp"
    return {"kind": "train", "name": "hostile", "spec": {"model": model, "data": data, **spec}}


def submit(body: Any, user: str = "alice") -> Callable[[Target], Answer]:
    return call("POST", JOBS, user=user, json_body=body)


def refused(status: int | tuple[int, ...], field: str | None = None, **more: Any) -> Expect:
    statuses = (status,) if isinstance(status, int) else status
    return Expect(statuses, field, **more)


def refused_write(status: int | tuple[int, ...], field: str | None = None, **more: Any) -> Expect:
    return refused(status, field, write=True, **more)


def chunks(data: bytes, size: int = 64 * 1024) -> list[bytes]:
    """`data` as chunks: sent as the body, it goes out chunked, with no Content-Length."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def cursor_of(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# --- legit controls ------------------------------------------------------------------------


def controls(t: Target) -> list[Case]:
    cat, job = "controls (legit)", t.ids["job"]
    ok = Expect((200,))
    valid = train_body({"source": "toy:ring8"})

    def paged(target: Target) -> Answer:
        first = target.request("GET", f"{JOBS}?limit=1").json() or {}
        return target.request("GET", f"{JOBS}?limit=1&cursor={first.get('next_cursor')}")

    return [
        Case(cat, "POST /jobs, a valid training job", submit(valid), Expect((201,))),
        Case(cat, "GET /jobs", call("GET", JOBS), ok),
        Case(cat, "GET /jobs, the second page by its cursor", paged, ok),
        Case(cat, "GET /jobs/<id>", call("GET", f"{JOBS}/{job}"), ok),
        Case(cat, "GET /jobs/<id>/events (JSON)", call("GET", f"{JOBS}/{job}/events"), ok),
        Case(cat, "GET /jobs/<id>/logs (JSON)", call("GET", f"{JOBS}/{job}/logs"), ok),
        Case(cat, "GET /jobs/<id>/artifacts", call("GET", f"{JOBS}/{job}/artifacts"), ok),
        Case(
            cat,
            "POST /datasets, a valid .npz",
            upload("points.npz", files.small_npz()),
            Expect((201,)),
        ),
        Case(cat, "GET /datasets", call("GET", DATASETS), ok),
        Case(cat, "GET /openapi.json", call("GET", "/api/v1/openapi.json", user=None), ok),
        Case(cat, "GET /healthz", call("GET", "/healthz", user=None), ok),
    ]
