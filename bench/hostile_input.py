"""Hostile payloads: what a request carries. Patterns and parsers fed input that makes them
work hard, and the six known 500s. Archives that lie and data paths reaching outside what a
job may read are in bench/hostile_data.py."""

from __future__ import annotations

from bench import hostile_files as files
from bench.hostile_cases import (
    BODY_LIMIT,
    DATASETS,
    JOBS,
    LONG_QUERY,
    TOKENS,
    Case,
    Target,
    call,
    chunks,
    cursor_of,
    refused,
    refused_write,
    submit,
    train_body,
    upload,
)
from bench.hostile_http import Expect

# --- regex and parser work that grows with the input ----------------------------------------

# The key's pattern nests a repetition in a repetition: each added character doubles the
# ways to split a run of letters that ends in a character it refuses.
KEY_LENGTHS = (8, 16, 18, 20, 21, 22, 23, 24, 25, 26, 27, 28, 30, 32, 48, 64, 1_000, 100_000)


def regex(t: Target) -> list[Case]:
    cat, job = "regex/backtracking", t.ids["job"]
    cases = []
    key_max = BODY_LIMIT - 200
    for k in (*KEY_LENGTHS, key_max):
        key = "datasets/" + "a" * k + "!"
        cases.append(
            Case(
                cat,
                f"spec.data.key = 'datasets/' + 'a'*{k} + '!'",
                submit(train_body({"source": "npz", "key": key})),
                refused_write(422, "spec.data.key"),
                series="key",
            )
        )
    for k in (12, 24, 64, 100_000):
        key = "datasets/" + "a." * k + "!"
        cases.append(
            Case(
                cat,
                f"spec.data.key = 'datasets/' + 'a.'*{k} + '!'",
                submit(train_body({"source": "npz", "key": key})),
                refused_write(422, "spec.data.key"),
                series="key-dots",
            )
        )
    for k in (99, 100_000):
        bad = "a" * k + "!"
        labels_cases = {"label name": {bad: "x"}, "label value": {"gpu": bad}}
        for what, labels in labels_cases.items():
            body = train_body({"source": "toy:ring8"}, resources={"labels": labels})
            cases.append(
                Case(
                    cat,
                    f"spec.resources.labels {what} 'a'*{k} + '!'",
                    submit(body),
                    refused_write(422, "spec.resources.labels"),
                )
            )
    for k in (190, 100_000):
        name = "a" * k + "!.npy"
        body = {
            "kind": "sample",
            "name": "n",
            "spec": {"job_id": job, "latents": {"job_id": job, "name": name}},
        }
        cases.append(
            Case(
                cat,
                f"spec.latents.name 'a'*{k} + '!.npy'",
                submit(body),
                refused_write(422, "spec.latents"),
            )
        )
        png = "a" * k + "!.png"
        body = {
            "kind": "sample",
            "name": "n",
            "spec": {"job_id": job, "invert": {"images": {"job_id": job, "name": png}}},
        }
        cases.append(
            Case(
                cat,
                f"spec.invert.images.name 'a'*{k} + '!.png'",
                submit(body),
                refused_write(422, "spec.invert"),
            )
        )
    for k in (33, 100_000):
        data = {"source": "dataset", "dataset_id": "a" * k + "!"}
        cases.append(
            Case(
                cat,
                f"spec.data.dataset_id 'a'*{k} + '!'",
                submit(train_body(data)),
                refused_write(422, "spec.data.dataset_id"),
            )
        )
    for k in (65, 100_000):
        body = {"kind": "evaluate", "name": "n", "spec": {"job_id": "a" * k}}
        cases.append(
            Case(
                cat,
                f"evaluate spec.job_id 'a'*{k}",
                submit(body),
                refused_write(422, "spec.job_id"),
            )
        )
    for k in (201, BODY_LIMIT - 300):
        body = {**train_body({"source": "toy:ring8"}), "name": "a" * k}
        cases.append(
            Case(cat, f"job name of {k} characters", submit(body), refused_write(422, "name"))
        )
    for k in (101, 100_000):
        cases.append(
            Case(
                cat,
                f"token name of {k} characters",
                call("POST", TOKENS, json_body={"name": "a" * k}),
                refused_write(422, "name"),
            )
        )
    for k in (201, 100_000):
        cases.append(
            Case(
                cat,
                f"dataset name of {k} characters",
                upload("p.npz", files.small_npz(), b"a" * k),
                refused_write(422, "name"),
            )
        )
    cases.append(
        Case(
            cat,
            "upload file name 'a'*10,000 + '!.npz' (kept short or refused)",
            upload("a" * 10_000 + "!.npz", files.small_npz()),
            Expect((201, 422), "file"),
        )
    )
    cases.append(
        Case(
            cat,
            "upload file name of 2,000 non-ASCII characters",
            upload("é" * 2_000 + ".npz", files.small_npz()),
            Expect((201, 422), "file"),
        )
    )
    for path in (
        f"{JOBS}/{'a' * 33}",
        f"{JOBS}/{'a' * LONG_QUERY}",
        f"{JOBS}/{job.upper()}",
        f"{DATASETS}/{'0' * 31}g",
        f"{JOBS}/{job}%20",
    ):
        cases.append(
            Case(
                cat,
                f"id in the URL: {path[len('/api/v1/') :][:60]}",
                call("GET", path),
                refused(404),
            )
        )
    node = "a" * 150 + "!"
    cases.append(
        Case(
            cat,
            "node name of 151 characters (not an admin)",
            call("POST", f"/api/v1/admin/nodes/{node}/drain"),
            refused((403, 404)),
        )
    )
    for label, cursor in {
        "cursor 'A'*4000": "A" * LONG_QUERY,
        "cursor '!!!!'": "!!!!",
        "cursor decoding to JSON nested 2,900 deep": cursor_of(b"[" * 2_900),
        "cursor decoding to a 4,000-digit number": cursor_of(b"9" * 2_900),
        "cursor decoding to [1, 2]": cursor_of([1, 2]),
        "cursor decoding to {'a': 1, 'b': 2}": cursor_of({"a": 1, "b": 2}),
        "cursor with year 0": cursor_of(["0000-01-01T00:00:00", job]),
    }.items():
        cases.append(
            Case(cat, label, call("GET", f"{JOBS}?cursor={cursor}"), refused(400, "cursor"))
        )
    stream = {"Accept": "text/event-stream"}
    for after in ("1" * 19, "1.2.3.4", "9" * LONG_QUERY, "-1", "1e3"):
        cases.append(
            Case(
                cat,
                f"events stream ?after={after[:24]}",
                call("GET", f"{JOBS}/{job}/events?after={after}", headers=stream),
                refused(400, "after"),
            )
        )
    cases.append(
        Case(
            cat,
            "events stream Last-Event-ID of 4,000 digits",
            call(
                "GET", f"{JOBS}/{job}/events", headers={**stream, "Last-Event-ID": "9" * LONG_QUERY}
            ),
            refused(400, "after"),
        )
    )
    for offset in ("9" * 19, "9" * LONG_QUERY, "-1", "0x10"):
        cases.append(
            Case(
                cat,
                f"logs ?offset={offset[:24]}",
                call("GET", f"{JOBS}/{job}/logs?offset={offset}"),
                refused(400, "offset"),
            )
        )
    for limit in ("9" * LONG_QUERY, "0", "1e3", "-5"):
        cases.append(
            Case(
                cat,
                f"GET /jobs?limit={limit[:24]}",
                call("GET", f"{JOBS}?limit={limit}"),
                refused(400, "limit"),
            )
        )
    for count in (1_000, 5_000, 20_000, 40_000):
        many = {f"trian{i}": 1 for i in range(count)}
        cases.append(
            Case(
                cat,
                f"{count:,} unknown spec fields, each near a real name",
                submit({"kind": "train", "name": "n", "spec": many}),
                refused_write(422, "spec"),
                series="unknown-fields",
            )
        )
    return cases


# --- the six known 500s -----------------------------------------------------------------------


def deep_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def known_500s(t: Target) -> list[Case]:
    cat, job = "known 500s", t.ids["job"]
    idx = "t10k-images-idx3-ubyte.gz"
    json_type = {"Content-Type": "application/json"}
    deep = deep_json(100_000)
    return [
        Case(
            cat,
            "truncated gzip idx upload",
            upload(idx, files.truncated_gzip_idx()),
            refused_write(422, "file"),
        ),
        Case(
            cat,
            "gzip idx upload with a bad CRC",
            upload(idx, files.bad_crc_gzip_idx()),
            refused_write(422, "file"),
        ),
        Case(
            cat,
            "JSON nested 100,000 deep, chunked, POST /jobs",
            call("POST", JOBS, headers=json_type, body=chunks(deep)),
            refused_write((400, 413, 422)),
        ),
        Case(
            cat,
            "JSON nested 100,000 deep, chunked, POST /tokens",
            call("POST", TOKENS, headers=json_type, body=chunks(deep)),
            refused_write((400, 413, 422)),
        ),
        Case(
            cat,
            "JSON nested 100,000 deep, chunked, POST /jobs/<id>/priority",
            call("POST", f"{JOBS}/{job}/priority", headers=json_type, body=chunks(deep)),
            refused((400, 413, 422)),
        ),
        Case(
            cat,
            "NUL in an artifact name: artifacts/a%00b",
            call("GET", f"{JOBS}/{job}/artifacts/a%00b"),
            refused((400, 404)),
        ),
        Case(
            cat,
            "NUL in an artifact name: artifacts/grid.png%00.txt",
            call("GET", f"{JOBS}/{job}/artifacts/grid.png%00.txt"),
            refused((400, 404)),
        ),
        Case(
            cat,
            "NUL in an upload's name field: 'a\\0b'",
            upload("p.npz", files.small_npz(), b"a\x00b"),
            refused_write(422, "name"),
        ),
        Case(
            cat,
            "NUL in an upload's name field: '\\0'",
            upload("p.npz", files.small_npz(), b"\x00"),
            refused_write(422, "name"),
        ),
        Case(
            cat,
            "cursor whose decoded id holds a NUL",
            call("GET", f"{JOBS}?cursor={cursor_of(['2026-01-01T00:00:00+00:00', 'a' + chr(0)])}"),
            refused(400, "cursor"),
        ),
        Case(
            cat,
            "cursor whose decoded id is only a NUL",
            call("GET", f"{JOBS}?cursor={cursor_of(['2026-01-01T00:00:00', chr(0)])}"),
            refused(400, "cursor"),
        ),
    ]
