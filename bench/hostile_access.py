"""Hostile access: missing, wrong, expired and revoked tokens on every operation the OpenAPI
document says needs one, another user's objects, and headers, bodies and methods no client
should send."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from bench import hostile_files as files
from bench.hostile_cases import (
    BODY_LIMIT,
    DATASETS,
    JOBS,
    TOKENS,
    Case,
    Target,
    call,
    chunks,
    multipart,
    refused,
    refused_write,
    submit,
    train_body,
    upload,
)
from bench.hostile_http import Answer, Expect, send_declared

BAD_CREDENTIALS: dict[str, dict[str, str | bytes]] = {
    "no Authorization": {},
    "Basic credentials": {"Authorization": "Basic YWxpY2U6cGFzcw=="},
    "an empty bearer token": {"Authorization": "Bearer "},
    "a wrong token": {"Authorization": "Bearer gf_wrong"},
    "a 4,000-byte token": {"Authorization": "Bearer " + "x" * 4_000},
}

# alice's tokens made stale before the battery (bench/hostile.py).
STALE_TOKENS = {"an expired token": "alice-expired", "a revoked token": "alice-revoked"}


def operations(document: dict[str, Any], t: Target) -> list[tuple[str, str]]:
    """(method, concrete path) of every operation the OpenAPI document says needs a token,
    path parameters filled with alice's objects."""
    fill = {
        "{job_id}": t.ids["job"],
        "{dataset_id}": t.ids["dataset"],
        "{token_id}": t.ids["token"],
        "{code_id}": t.ids["code"],
        # The token is checked before the webhook is looked up: any well-formed id will do.
        "{webhook_id}": "0" * 32,
        "{name}": "nobody",
    }
    found = []
    for path, ops in document["paths"].items():
        for method, operation in ops.items():
            if operation.get("security") == []:
                continue
            concrete = path.replace(
                f"{JOBS}/{{job_id}}/artifacts/{{name}}",
                f"{JOBS}/{{job_id}}/artifacts/metrics.jsonl",
            )
            for hole, value in fill.items():
                concrete = concrete.replace(hole, value)
            found.append((method.upper(), concrete))
    return found


_BODIES = {"/priority": {"priority": -1}, "/share": {"shared": True}, "/quota": {"max_devices": 1}}


def _body_for(path: str) -> Any:
    return next((b for end, b in _BODIES.items() if path.endswith(end)), None)


def auth(t: Target, ops: list[tuple[str, str]]) -> list[Case]:
    cat = "auth"
    cases = []
    for method, path in ops:
        body = _body_for(path)
        sends = {
            label: call(method, path, user=None, headers=headers, json_body=body)
            for label, headers in BAD_CREDENTIALS.items()
        }
        for label, user in STALE_TOKENS.items():
            sends[label] = call(method, path, user=user, json_body=body)
        for label, send_it in sends.items():
            name = f"{method} {_short(path, t)} with {label}"
            cases.append(Case(cat, name, send_it, Expect((401,), write=method != "GET")))
    mine = [
        (m, p)
        for m, p in ops
        if any(v in p for v in (t.ids["job"], t.ids["dataset"], t.ids["token"], t.ids["code"]))
    ]
    for method, path in mine:
        send_it = call(method, path, user="bob", json_body=_body_for(path))
        cases.append(
            Case(
                cat,
                f"bob: {method} {_short(path, t)} (alice's)",
                send_it,
                Expect((404,), write=method != "GET"),
            )
        )
    job, dataset = t.ids["job"], t.ids["dataset"]

    def alice_job_unlisted(answer: Answer) -> str | None:
        return "bob's listing shows alice's job" if job.encode() in answer.body else None

    cases += [
        Case(
            cat,
            "bob: sample job on alice's job",
            submit({"kind": "sample", "name": "n", "spec": {"job_id": job, "seeds": [1]}}, "bob"),
            refused_write(422, "spec.job_id"),
        ),
        Case(
            cat,
            "bob: evaluate alice's job",
            submit({"kind": "evaluate", "name": "n", "spec": {"job_id": job}}, "bob"),
            refused_write(422, "spec.job_id"),
        ),
        Case(
            cat,
            "bob: train on alice's dataset",
            submit(train_body({"source": "dataset", "dataset_id": dataset}), "bob"),
            refused_write(422, "spec.data.dataset_id"),
        ),
        Case(
            cat,
            "bob: GET /jobs?all=true (not an admin)",
            call("GET", f"{JOBS}?all=true", user="bob"),
            refused(403),
        ),
        Case(
            cat,
            "bob: GET /tokens?all=true (not an admin)",
            call("GET", f"{TOKENS}?all=true", user="bob"),
            refused(403),
        ),
        Case(
            cat,
            "bob: PUT /admin/users/alice/quota (not an admin)",
            call(
                "PUT", "/api/v1/admin/users/alice/quota", user="bob", json_body={"max_devices": 0}
            ),
            refused((403, 404), write=True),
        ),
        Case(
            cat,
            "bob: GET /jobs does not list alice's job",
            call("GET", JOBS, user="bob"),
            Expect((200,)),
            check=alice_job_unlisted,
        ),
        Case(
            cat,
            "a token with a NUL byte",
            call("GET", JOBS, user=None, headers={"Authorization": b"Bearer gf_\x00x"}),
            refused((400, 401)),
        ),
        Case(
            cat,
            "a token with a Latin-1 byte",
            call("GET", JOBS, user=None, headers={"Authorization": b"Bearer gf_\xe9"}),
            refused(401),
        ),
    ]
    return cases


def _short(path: str, t: Target) -> str:
    for label, value in t.ids.items():
        path = path.replace(value, f"<{label}>")
    return path.removeprefix("/api/v1")


# --- header and method abuse ----------------------------------------------------------------


def headers_methods(t: Target) -> list[Case]:
    cat, job, dataset = "headers and methods", t.ids["job"], t.ids["dataset"]
    valid = train_body({"source": "toy:ring8"})
    valid_bytes = json.dumps(valid).encode()
    json_type = {"Content-Type": "application/json"}
    big = json.dumps({**valid, "name": "a" * (2 * BODY_LIMIT)}).encode()
    npz_body, form = multipart({"name": b"n"}, (b"p.npz", files.small_npz()))

    def declared_huge(target: Target) -> Answer:
        auth_header = {"Authorization": f"Bearer {target.tokens['alice']}", **form}
        return send_declared(target.base_url, "POST", DATASETS, auth_header, npz_body, 3 * 2**30)

    def replayed(answer: Answer) -> str | None:
        replay = answer.headers.get("idempotent-replayed")
        return None if replay == "true" else f"Idempotent-Replayed: {replay!r}, expected true"

    def keyed(key: str, body: Any) -> Callable[[Target], Answer]:
        return call("POST", JOBS, json_body=body, headers={"Idempotency-Key": key})

    cases = [
        Case(
            cat,
            "a 10 KB header",
            call("GET", JOBS, headers={"X-Junk": "a" * 10_000}),
            refused((400, 431)),
        ),
        Case(
            cat,
            "150 headers",
            call("GET", JOBS, headers={f"X-H{i}": "v" for i in range(150)}),
            refused((400, 431)),
        ),
        Case(
            cat,
            "a 9 KB Authorization header",
            call("GET", JOBS, user=None, headers={"Authorization": "Bearer " + "x" * 9_000}),
            refused((400, 401, 431)),
        ),
        Case(
            cat,
            "a 5,000-byte request line",
            call("GET", f"{JOBS}?x={'a' * 5_000}"),
            refused((400, 414)),
        ),
        Case(
            cat,
            "POST /jobs, valid JSON sent as text/plain",
            call("POST", JOBS, headers={"Content-Type": "text/plain"}, body=valid_bytes),
            refused_write((400, 415)),
        ),
        Case(
            cat,
            "POST /jobs, no Content-Type",
            call("POST", JOBS, body=valid_bytes),
            refused_write((400, 415)),
        ),
        Case(
            cat,
            "POST /jobs, application/json that is not JSON",
            call("POST", JOBS, headers=json_type, body=b'{"kind": "train",'),
            refused_write(400),
        ),
        Case(
            cat,
            "POST /jobs, application/json in Latin-1",
            call("POST", JOBS, headers=json_type, body=b'{"kind": "train", "name": "\xe9"}'),
            refused_write((400, 422)),
        ),
        Case(
            cat,
            "POST /jobs, a multipart form",
            call("POST", JOBS, headers=form, body=npz_body),
            refused_write((400, 415)),
        ),
        Case(cat, "POST /jobs, body []", submit([]), refused_write((400, 422))),
        Case(
            cat,
            "POST /jobs, body null",
            call("POST", JOBS, headers=json_type, body=b"null"),
            refused_write((400, 422)),
        ),
        Case(
            cat,
            "POST /jobs, steps of 400 digits",
            submit(train_body({"source": "toy:ring8"}, train={"steps": 10**400})),
            refused_write(422, "spec.train.steps"),
        ),
        Case(
            cat,
            "POST /jobs, steps 1e999",
            call(
                "POST",
                JOBS,
                headers=json_type,
                body=valid_bytes[:-2] + b', "train": {"steps": 1e999}}}',
            ),
            refused_write((400, 422)),
        ),
        Case(
            cat,
            "POST /datasets, a JSON body",
            call("POST", DATASETS, json_body={"name": "n", "file": "x"}),
            refused_write((400, 415, 422), "file"),
        ),
        Case(
            cat,
            "POST /datasets, multipart without a boundary",
            call("POST", DATASETS, headers={"Content-Type": "multipart/form-data"}, body=npz_body),
            refused_write((400, 422)),
        ),
        Case(
            cat,
            "POST /datasets, multipart whose boundary never comes",
            call(
                "POST",
                DATASETS,
                headers={"Content-Type": "multipart/form-data; boundary=zzz"},
                body=npz_body,
            ),
            refused_write((400, 422)),
        ),
        Case(
            cat, "POST /datasets declaring 3 GiB, sending 1 KB", declared_huge, refused_write(413)
        ),
        Case(
            cat,
            "POST /jobs, 2 MiB of JSON",
            call("POST", JOBS, headers=json_type, body=big),
            refused_write(413),
        ),
        Case(
            cat,
            "POST /jobs, 2 MiB of JSON, chunked",
            call("POST", JOBS, headers=json_type, body=chunks(big)),
            refused_write(413),
        ),
        Case(
            cat,
            "POST /tokens, 2 MiB of JSON",
            call("POST", TOKENS, headers=json_type, body=big),
            refused_write(413),
        ),
        Case(
            cat,
            "POST /jobs/<id>/priority, 2 MiB of JSON, chunked",
            call("POST", f"{JOBS}/{job}/priority", headers=json_type, body=chunks(big)),
            refused(413),
        ),
    ]
    keys: dict[str, str | bytes] = {
        "201 characters": "k" * 201,
        "a space": "a b",
        "empty": "",
        "a Latin-1 byte": b"key-\xe9",
        "a control character": "key\x01",
    }
    for label, key in keys.items():
        cases.append(
            Case(
                cat,
                f"Idempotency-Key with {label}",
                call("POST", JOBS, json_body=valid, headers={"Idempotency-Key": key}),
                refused_write(400, "Idempotency-Key"),
            )
        )
    cases += [
        Case(
            cat,
            "Idempotency-Key of 201 characters on an upload",
            upload("p.npz", files.small_npz(), headers={"Idempotency-Key": "k" * 201}),
            refused_write(400, "Idempotency-Key"),
        ),
        Case(
            cat,
            "Idempotency-Key reused for another request",
            keyed("hostile-reused", {**valid, "name": "other"}),
            refused_write(422, "Idempotency-Key"),
            setup=keyed("hostile-reused", valid),
        ),
        Case(
            cat,
            "Idempotency-Key resent with the same request (replayed)",
            keyed("hostile-replayed", valid),
            Expect((201,)),
            check=replayed,
            setup=keyed("hostile-replayed", valid),
        ),
    ]
    for method, path in (
        ("PUT", JOBS),
        ("DELETE", JOBS),
        ("PUT", f"{JOBS}/{job}"),  # PATCH sets its labels
        ("POST", "/healthz"),
        ("DELETE", TOKENS),
        ("PUT", f"{DATASETS}/{dataset}"),
        ("TRACE", JOBS),
        ("FOO", JOBS),
        ("POST", f"{JOBS}/{job}/events"),
        ("GET", f"{JOBS}/{job}/cancel"),
    ):
        cases.append(
            Case(
                cat,
                f"{method} {_short(path, t)}",
                call(method, path),
                refused(405, write=method != "GET"),
            )
        )
    for path in (
        f"{JOBS}/",
        f"{DATASETS}/",
        f"{JOBS}/{job}/",
        f"{TOKENS}/",
        f"{JOBS}/{job}/artifacts/",
        "/api/v1//jobs",
        f"{JOBS}/%2e%2e/x",
    ):
        cases.append(
            Case(cat, f"GET {_short(path, t)}", call("GET", path), refused((301, 308, 404)))
        )
    return cases
