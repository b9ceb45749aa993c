"""Sharded datasets: streaming speed against memory, and a rank's memory against data size.

    python -m bench.shards [--images N] [--steps S] [--sizes-gb 0.5,3] [--json PATH]
        [--scratch DIR]

(a) Speed, side by side in this process on the same random 64 px RGB PNGs (noise: the worst
    case for PNG, ~12 KB each): batches of 64 served by `data.ArraySource` from memory
    against `ShardSource` from shards with 0 and 1 loader processes (raw images/s), and a
    64 px dcgan trained from memory against from shards (1 loader process), as images/s of
    the step: the ratio says whether streaming keeps pace with the step on this machine.
(b) Memory: synthetic datasets of each size in --sizes-gb (decoded pixels; the PNGs on disk
    are as large) written as shards to --scratch, each streamed through one whole epoch by a
    rank in a process of its own with one loader process; its peak resident memory (VmHWM)
    and its loader's are read from /proc. Bounded means: the same at 3 GB as at 0.5 GB.
    Every dataset is deleted after its run; `df` of the scratch folder is checked first.

The images cycle through 1,024 distinct noise PNGs (decoding costs the same; generating a
quarter of a million fresh ones would take minutes and prove nothing more).
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from bench.hooks import QuietHooks
from bench.lab import write_json
from shared.datafiles.shard_index import INDEX_NAME, ShardIndex, member_stem
from shared.datafiles.shards import ShardWriter
from shared.specs import TrainSpec
from worker.gan.data import ArraySource
from worker.gan.hooks import ProgressReport
from worker.gan.shard_stream import ShardSource
from worker.gan.train import train

SIDE, CHANNELS, BATCH = 64, 3, 64
DISTINCT = 1024
IMAGE_BYTES = SIDE * SIDE * CHANNELS
# Free disk wanted beyond the largest dataset, for everyone else on the machine.
DISK_MARGIN = 5 * 1024**3


def noise_pngs(count: int, seed: int = 0) -> list[bytes]:
    """`count` distinct 64 px RGB noise PNGs."""
    generator = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        pixels = generator.integers(0, 256, (SIDE, SIDE, CHANNELS), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(buffer, format="PNG", compress_level=1)
        out.append(buffer.getvalue())
    return out


def write_dataset(folder: Path, count: int, pngs: list[bytes]) -> ShardIndex:
    """`count` images (cycling through `pngs`) as shards of the default size in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = ShardWriter(folder, images_per_shard=4096, shard_bytes=64 * 1024**2)
    for position in range(count):
        writer.add(member_stem(position), ".png", pngs[position % len(pngs)], None)
    writer.close_shard()
    index = ShardIndex(
        format="ganforge-shards",
        version=1,
        count=count,
        shards=writer.entries,
        shape=(CHANNELS, SIDE, SIDE),
        channels=CHANNELS,
    )
    (folder / INDEX_NAME).write_text(index.to_json())
    return index


def decoded(pngs: list[bytes], count: int) -> torch.Tensor:
    """The same images in memory, uint8 [count, C, H, W], as ArraySource holds them."""
    images = np.stack(
        [np.asarray(Image.open(io.BytesIO(pngs[i % len(pngs)]))) for i in range(count)]
    )
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def stream_rate(source: Any, draws: int) -> float:
    """Images/s of `draws` batches, after one warm-up batch (workers started, shards open)."""
    source.batch(1)
    start = time.perf_counter()
    for draw in range(2, draws + 2):
        source.batch(draw)
    return draws * source.batch_size / (time.perf_counter() - start)


def shard_source(folder: Path, index: ShardIndex, workers: int) -> ShardSource:
    return ShardSource(
        folder,
        index,
        sample_shape=(CHANNELS, SIDE, SIDE),
        seed=0,
        rank=0,
        world_size=1,
        batch_size=BATCH,
        workers=workers,
    )


class _Timing(QuietHooks):
    def __init__(self) -> None:
        self.times: dict[int, float] = {}

    def report_progress(self, report: ProgressReport) -> None:
        self.times[report.step] = time.perf_counter()


def train_rate(data: dict[str, Any], steps: int) -> float:
    """Images/s of a 64 px dcgan's steps 10 to `steps` on `data`."""
    spec = TrainSpec.model_validate(
        {
            "model": {"family": "dcgan", "width": 16},
            "latent": {"dim": 64},
            "data": data,
            "train": {"steps": steps, "batch_size": BATCH, "seed": 0},
            "checkpoint_every": steps + 1,
            "sample_every": steps + 1,
        }
    )
    hooks = _Timing()
    train(spec, hooks=hooks, data_path=Path(data["path"]))
    return (steps - 10) * BATCH / (hooks.times[steps] - hooks.times[10])


def speed(scratch: Path, images: int, steps: int) -> dict[str, Any]:
    pngs = noise_pngs(DISTINCT)
    folder = scratch / "speed"
    index = write_dataset(folder, images, pngs)
    memory = ArraySource(decoded(pngs, images), 0, 0, 1, BATCH)
    draws = images // BATCH - 2
    rates = {"memory": stream_rate(memory, draws)}
    for workers in (0, 1):
        source = shard_source(folder, index, workers)
        rates[f"shards_{workers}_loader"] = stream_rate(source, draws)
        source.close()
    npz = scratch / "speed.npz"
    np.savez(npz, data=decoded(pngs, images).permute(0, 2, 3, 1).numpy())
    threads = torch.get_num_threads()
    rates["train_memory"] = train_rate({"source": "npz", "path": str(npz)}, steps)
    shards = {"source": "images", "path": str(folder), "loader_workers": 1}
    rates["train_shards"] = train_rate(shards, steps)
    torch.set_num_threads(threads)  # open_shards gave one of them to the loader
    shutil.rmtree(folder)
    npz.unlink()
    return {name: round(rate, 1) for name, rate in rates.items()} | {
        "stream_ratio_0_loader": round(rates["shards_0_loader"] / rates["memory"], 3),
        "stream_ratio_1_loader": round(rates["shards_1_loader"] / rates["memory"], 3),
        "train_ratio": round(rates["train_shards"] / rates["train_memory"], 3),
        "images": images,
        "train_steps": steps,
        "torch_threads": torch.get_num_threads(),
    }


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _epoch_in_a_rank(folder: str, count: int, result: Any) -> None:
    """A rank's whole epoch over the shards with one loader; its and its loader's peaks."""
    torch.set_num_threads(1)
    from shared.datafiles.shard_index import read_index

    index = read_index(Path(folder))
    source = shard_source(Path(folder), index, workers=1)
    loader_peak, start = 0, time.perf_counter()
    for draw in range(1, count // BATCH + 1):
        source.batch(draw)
        if draw % 200 == 0:
            loader_peak = max(
                [loader_peak, *(_status_kib(p, "VmHWM") for p in _children(os.getpid()))]
            )
    elapsed = time.perf_counter() - start
    loader_peak = max([loader_peak, *(_status_kib(p, "VmHWM") for p in _children(os.getpid()))])
    result.update(
        rank_peak_mib=round(_status_kib(os.getpid(), "VmHWM") / 1024, 1),
        loader_peak_mib=round(loader_peak / 1024, 1),
        images_per_s=round(count // BATCH * BATCH / elapsed, 1),
    )
    source.close()


def memory(scratch: Path, sizes_gb: list[float]) -> list[dict[str, Any]]:
    pngs = noise_pngs(DISTINCT)
    runs = []
    for size in sizes_gb:
        count = int(size * 1024**3 / IMAGE_BYTES)
        needed = count * (len(pngs[0]) + 1024) + DISK_MARGIN
        free = shutil.disk_usage(scratch).free
        if free < needed:
            raise SystemExit(
                f"{scratch}: {free / 1024**3:.1f} GiB free, {needed / 1024**3:.1f} needed"
            )
        folder = scratch / f"data-{size}gb"
        started = time.perf_counter()
        write_dataset(folder, count, pngs)
        on_disk = sum(path.stat().st_size for path in folder.iterdir())
        written_s = time.perf_counter() - started
        with multiprocessing.Manager() as manager:
            result = manager.dict()
            process = multiprocessing.get_context("spawn").Process(
                target=_epoch_in_a_rank, args=(str(folder), count, result)
            )
            process.start()
            process.join()
            run = dict(result)
        shutil.rmtree(folder)
        run.update(
            decoded_gib=round(count * IMAGE_BYTES / 1024**3, 2),
            on_disk_gib=round(on_disk / 1024**3, 2),
            images=count,
            write_s=round(written_s, 1),
        )
        print(f"memory: {run}", flush=True)
        runs.append(run)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4096, help="(a)'s dataset size")
    parser.add_argument("--steps", type=int, default=40, help="(a)'s training steps")
    parser.add_argument("--sizes-gb", default="0.5,3", help="(b)'s decoded dataset sizes")
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/bench-shards"))
    parser.add_argument("--skip", choices=["speed", "memory"], default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(2)  # this machine's cores; loader_plan leaves the rank 1 beside 1 loader
    args.scratch.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {"load_before": os.getloadavg()}
    try:
        if args.skip != "speed":
            figures["speed"] = speed(args.scratch, args.images, args.steps)
            print(f"speed: {figures['speed']}", flush=True)
        if args.skip != "memory":
            sizes = [float(size) for size in args.sizes_gb.split(",")]
            figures["memory"] = memory(args.scratch, sizes)
    finally:
        shutil.rmtree(args.scratch, ignore_errors=True)
    figures["load_after"] = os.getloadavg()
    write_json(args.json, "shards", figures)


if __name__ == "__main__":
    main()
