"""An attempt's data step on a sharded dataset: cold and warm through the node's shard cache,
against copying every shard as the agent did before it.

    python -m bench.shard_cache [--images N] [--repeats R] [--json PATH]

A sharded dataset of N random 64 px RGB noise PNGs (bench/shards.py's, ~12 KB each, 4,096 a
shard) is stored in a moto S3 bucket (its own server, or the test session's). Each repeat
times the agent's `fetch_data` (worker/agent/inputs.py, what the `data` operation runs before
a job's ranks read a byte) three ways, each into a fresh inputs folder:
- **copy**: without the cache, every object downloaded into the folder (the old path);
- **cold**: through a fresh, empty node cache: fetched into the cache, linked into the folder;
- **warm**: a second attempt on the same cache: linked only, fetching nothing.
Figures are medians over the repeats (milliseconds, and MB/s of the bytes fetched), with the
bytes each way fetched, which for warm must be 0, and the median of each repeat's cold over
copy (copy and cold alternate which goes first). moto runs in this process's host, so a
fetch here is a loopback copy: a real store is slower, which widens warm's lead.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

from bench.lab import Lab, moto_s3, write_json
from bench.shards import noise_pngs, write_dataset
from shared.config import Settings
from shared.specs.data import DataSpec
from shared.storage import Storage, open_storage
from worker.agent.inputs import fetch_data
from worker.agent.shard_cache import ShardCache

PREFIX = "datasets/bench-shards"


@contextmanager
def s3_endpoint(lab: Lab | None) -> Iterator[str]:
    """The lab's S3 endpoint, or a moto server of the run's own."""
    if lab is not None:
        yield lab.s3_endpoint
        return
    with moto_s3() as endpoint:
        yield endpoint


def stored_dataset(store: Storage, scratch: Path, images: int) -> int:
    """Write and store the dataset under PREFIX; its stored bytes."""
    write_dataset(scratch / "dataset", images, noise_pngs(min(images, 1024)))
    for file in sorted((scratch / "dataset").iterdir()):
        with file.open("rb") as opened:
            store.put(f"{PREFIX}/{file.name}", opened)
    shutil.rmtree(scratch / "dataset")
    return sum(info.size for info in store.list(f"{PREFIX}/"))


def timed_fetch(store: Storage, folder: Path, cache: ShardCache | None) -> float:
    """Seconds of one data step into `folder`."""
    started = time.perf_counter()
    fetch_data(DataSpec(source="images", key=PREFIX), store, folder, shards=cache)
    return time.perf_counter() - started


def one_repeat(
    store: Storage, scratch: Path, stored: int, copy_first: bool
) -> dict[str, dict[str, float]]:
    """copy, cold and warm once each, on a fresh node (copy and cold alternate in order)."""
    node = Path(tempfile.mkdtemp(dir=scratch))
    try:
        cold, warm = (ShardCache(store, node / "cache", max_bytes=2 * stored) for _ in "cw")
        copy_s = timed_fetch(store, node / "copy", None) if copy_first else 0.0
        cold_s = timed_fetch(store, node / "cold", cold)
        copy_s = copy_s if copy_first else timed_fetch(store, node / "copy", None)
        warm_s = timed_fetch(store, node / "warm", warm)
        cold.close()
        warm.close()
    finally:
        shutil.rmtree(node, ignore_errors=True)
    return {
        "copy": {"s": copy_s, "fetched_bytes": stored},
        "cold": {"s": cold_s, "fetched_bytes": cold.used.fetched_bytes},
        "warm": {"s": warm_s, "fetched_bytes": warm.used.fetched_bytes},
    }


def main(argv: list[str] | None = None, lab: Lab | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16384, help="noise PNGs in the dataset")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {"load_before": os.getloadavg(), "repeats": args.repeats}
    with s3_endpoint(lab) as endpoint, tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        bucket = f"bench-shards-{os.getpid()}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
        settings = Settings.from_env(
            {
                "GANFORGE_HOME": str(scratch / "home"),
                "GANFORGE_STORAGE_URL": f"s3://{bucket}/ganforge",
                "GANFORGE_S3_ENDPOINT_URL": endpoint,
            }
        )
        store = open_storage(settings)
        stored = stored_dataset(store, scratch, args.images)
        figures["dataset"] = {"images": args.images, "bytes": stored}
        runs = [one_repeat(store, scratch, stored, n % 2 == 0) for n in range(args.repeats)]
    for way in ("copy", "cold", "warm"):
        seconds = [run[way]["s"] for run in runs]
        median = statistics.median(seconds)
        figures[way] = {
            "median_ms": round(median * 1000, 1),
            "all_ms": [round(s * 1000, 1) for s in seconds],
            "fetched_bytes": max(run[way]["fetched_bytes"] for run in runs),
            # warm fetches nothing: a rate of its bytes would say nothing
            "mb_per_s": None if way == "warm" else round(stored / median / 1e6, 1),
        }
    # Each repeat's cold over its copy: the cache's own cost on a first attempt.
    figures["cold_over_copy"] = round(
        statistics.median(run["cold"]["s"] / run["copy"]["s"] for run in runs), 2
    )
    figures["load_after"] = os.getloadavg()
    results = write_json(args.json, "shard_cache", figures)
    print(results)
    return results


if __name__ == "__main__":
    main()
