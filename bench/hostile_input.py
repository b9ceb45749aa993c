"""Hostile payloads: what a request carries. Patterns and parsers fed input that makes them
work hard, the six known 500s, archives that lie about their contents, and data paths and
keys reaching outside what a job may read."""

from __future__ import annotations

from collections.abc import Callable

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
from bench.hostile_http import Answer, Expect

# How far one lying archive may raise an API process's resident memory above where it was.
RSS_GROWTH_BOUND = 32 * 1024 * 1024

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


# --- archives that lie ----------------------------------------------------------------------


def _rss_bounded(send_it: Callable[[Target], Answer]) -> Callable[[Target], Answer]:
    """Send, noting how far the API processes' resident memory peaked above its size before."""

    def go(target: Target) -> Answer:
        before = target.memory.reset_peaks()
        answer = send_it(target)
        peaks = target.memory.peaks()
        grown = [peaks[pid] - before[pid] for pid in peaks if pid in before]
        answer.notes["peak_rss_growth_mib"] = round(max(grown, default=0) / 2**20, 1)
        return answer

    return go


def _rss_check(answer: Answer) -> str | None:
    grown = answer.notes.get("peak_rss_growth_mib", 0)
    bound = RSS_GROWTH_BOUND / 2**20
    return (
        f"an API process's peak RSS grew {grown} MiB (bound {bound:g})" if grown > bound else None
    )


def lying_archives(t: Target) -> list[Case]:
    cat = "archives that lie"
    real = 64 * 2**20
    bomb = files.zip_of({"img000.png": files.png_claiming(100_000, 100_000)})
    return [
        Case(
            cat,
            "zip member declared ~100 B, 64 MiB real, CRC of all of it",
            _rss_bounded(upload("lie.zip", files.understated_zip(real, crc_of_declared=False))),
            refused_write(422, "file"),
            check=_rss_check,
        ),
        Case(
            cat,
            "zip member declared ~100 B, 64 MiB real, CRC of the declared part",
            _rss_bounded(upload("lie.zip", files.understated_zip(real, crc_of_declared=True))),
            refused_write(422, "file"),
            check=_rss_check,
        ),
        Case(
            cat,
            ".npz whose header promises 10^12 points (float32)",
            upload("big.npz", files.npz_promising((10**12, 2), "<f4")),
            refused_write(422, "file"),
        ),
        Case(
            cat,
            ".npz whose header promises 10^12 images 28x28 (uint8)",
            upload("big.npz", files.npz_promising((10**12, 28, 28), "|u1")),
            refused_write(422, "file"),
        ),
        Case(
            cat,
            ".npz, format 2.0 header promising 10^12 points",
            upload("big.npz", files.npz_promising((10**12, 2), "<f4", (2, 0))),
            refused_write(422, "file"),
        ),
        Case(
            cat,
            "zip of a PNG claiming 100,000 x 100,000 pixels",
            upload("bomb.zip", bomb),
            refused_write(422, "file"),
        ),
        Case(
            cat,
            "gzip idx promising 4 GiB, holding 256 MiB of zeros",
            _rss_bounded(
                upload(
                    "t10k-images-idx3-ubyte.gz",
                    files.lying_gzip_idx(4 * 2**30 - 2**20, 256 * 2**20),
                )
            ),
            refused_write(422, "file"),
            check=_rss_check,
        ),
        Case(
            cat,
            "tar with a symbolic link member",
            upload("l.tar", files.tar_with_link("img009.png", "/etc/passwd")),
            refused_write(422, "file"),
        ),
        Case(
            cat,
            "tar with a hard link member",
            upload("l.tar", files.tar_with_link("img009.png", "img000.png", hard=True)),
            refused_write(422, "file"),
        ),
        Case(
            cat,
            "tar member named ../../escape.png",
            upload("e.tar", files.tar_with_member("../../escape.png")),
            refused_write(422, "file"),
        ),
        Case(
            cat,
            "zip whose member is a symbolic link to /etc/passwd",
            upload("l.zip", files.zip_with_symlink("img009.png", "/etc/passwd")),
            refused_write(422, "file"),
        ),
    ]


# --- path confinement -----------------------------------------------------------------------


def path_confinement(t: Target) -> list[Case]:
    cat, root = "path confinement", t.data_root
    paths = {
        "/etc/passwd": ("npz", "/etc/passwd"),
        "/etc": ("images", "/etc"),
        "/proc/self/environ": ("npz", "/proc/self/environ"),
        "root/../outside": ("images", f"{root}/../{t.outside.name}"),
        "root/linked/../../outside": ("images", f"{root}/linked/../../{t.outside.name}"),
        "root/escape (a link to outside)": ("images", f"{root}/escape"),
        "root/escape/img000.png": ("npz", f"{root}/escape/img000.png"),
        "a relative path": ("images", "linked"),
        "~root": ("images", "~root"),
        "the root with a NUL": ("images", f"{root}\x00/linked"),
    }
    cases = [
        Case(
            cat,
            f"spec.data.path {label}",
            submit(train_body({"source": source, "path": p})),
            refused_write(422, "spec.data.path"),
        )
        for label, (source, p) in paths.items()
    ]
    dataset = t.ids["dataset"]
    keys = {
        "datasets/../jobs/x": "datasets/../jobs/x",
        "datasets/a/../../jobs": "datasets/a/../../jobs",
        "/datasets/x": "/datasets/x",
        "datasets//x": "datasets//x",
        "jobs/<alice's job>/": f"jobs/{t.ids['job']}/",
        "uploads/<alice's dataset>/ (as bob)": f"uploads/{dataset}/",
        "datasets/%2e%2e/x": "datasets/%2e%2e/x",
        "datasets\\..\\jobs": "datasets\\..\\jobs",
    }
    for label, key in keys.items():
        body = train_body({"source": "npz", "key": key})
        cases.append(
            Case(
                cat,
                f"spec.data.key {label}",
                submit(body, user="bob"),
                refused_write(422, "spec.data.key"),
            )
        )
    return cases
