"""Hostile payloads, the data a request names: archives that lie about their contents (each
sent with the API processes' resident memory watched), and data paths and keys reaching
outside what a job may read. What a request itself carries (patterns, parsers, the known
500s) is in bench/hostile_input.py."""

from __future__ import annotations

from collections.abc import Callable

from bench import hostile_files as files
from bench.hostile_cases import (
    Case,
    Target,
    refused_write,
    submit,
    train_body,
    upload,
)
from bench.hostile_http import Answer

# How far one lying archive may raise an API process's resident memory above where it was.
RSS_GROWTH_BOUND = 32 * 1024 * 1024


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
