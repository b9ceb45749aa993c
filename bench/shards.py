"""Sharded datasets: streaming speed against memory, and a rank's memory against data size.

    python -m bench.shards [--images N] [--steps S] [--repeats R] [--sizes-gb 0.5,3]
        [--draws D] [--scratch DIR] [--skip speed|memory] [--json PATH]

(a) Speed, side by side in this process on the same random 64 px RGB PNGs (noise: the worst
    case for PNG, ~12 KB each), alternated R times (medians, and the median of per-repeat
    ratios): batches of 64 served by `data.ArraySource` from memory against `ShardSource`
    from shards with 0 and 1 loader processes (raw images/s), and a 64 px dcgan trained
    from memory (an .npz read whole) against from shards (1 loader process), as images/s
    of the step: that ratio says whether streaming keeps pace with the step here. Every
    side computes on one torch thread: the ratios compare data paths, not thread counts.
(b) Memory: synthetic datasets of each size in --sizes-gb (decoded pixels; the noise PNGs
    on disk are as large) written as shards to --scratch, each streamed D batches by a
    rank in a spawned process of its own (one torch thread, one loader process): the
    rank's VmRSS and VmHWM and its loader's VmHWM from /proc at each quarter of the way.
    Bounded means: the same at 3 GB as at 0.5 GB, and flat along the way. For contrast, the
    smallest size is also read whole from an .npz into a rank, as unsharded data is.
    Free disk is checked before each dataset is written, and each is deleted after its run.

The images cycle through 1,024 distinct noise PNGs (decoding costs the same; generating a
quarter of a million fresh ones would take minutes and prove nothing more).
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from bench.hooks import QuietHooks
from bench.lab import write_json
from shared.datafiles.shard_index import INDEX_NAME, ShardIndex, member_stem, read_index
from shared.datafiles.shards import ShardWriter
from shared.specs import TrainSpec
from worker.gan.data import ArraySource, resolve_data
from worker.gan.hooks import ProgressReport
from worker.gan.shard_stream import ShardSource
from worker.gan.train import train

SIDE, BATCH = 64, 64
CHANNELS: Literal[3] = 3
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
    train(resolve_data(spec, None), hooks=hooks)
    return (steps - 10) * BATCH / (hooks.times[steps] - hooks.times[10])


def speed(scratch: Path, images: int, steps: int, repeats: int) -> dict[str, Any]:
    """(a): memory and shard sources alternated `repeats` times; medians and the median of
    the per-repeat ratios, so a neighbour's burst hurts both sides alike."""
    pngs = noise_pngs(DISTINCT)
    folder = scratch / "speed"
    index = write_dataset(folder, images, pngs)
    npz = scratch / "speed.npz"
    in_memory = decoded(pngs, images)
    np.savez(npz, data=in_memory.permute(0, 2, 3, 1).numpy())
    draws = images // BATCH - 2
    shards_data = {"source": "images", "path": str(folder), "loader_workers": 1}
    runs: dict[str, list[float]] = {}
    for _ in range(repeats):
        rates = {"memory": stream_rate(ArraySource(in_memory, 0, 0, 1, BATCH), draws)}
        for workers in (0, 1):
            source = shard_source(folder, index, workers)
            rates[f"shards_{workers}_loader"] = stream_rate(source, draws)
            source.close()
        rates["train_memory"] = train_rate({"source": "npz", "path": str(npz)}, steps)
        # A rank with a share of 2 cores: open_shards gives it 1 loader and 1 torch thread.
        torch.set_num_threads(2)
        rates["train_shards"] = train_rate(shards_data, steps)
        torch.set_num_threads(1)
        rates["stream_ratio_0_loader"] = rates["shards_0_loader"] / rates["memory"]
        rates["stream_ratio_1_loader"] = rates["shards_1_loader"] / rates["memory"]
        rates["train_ratio"] = rates["train_shards"] / rates["train_memory"]
        for name, rate in rates.items():
            runs.setdefault(name, []).append(rate)
        print(f"speed, one repeat: { {k: round(v, 3) for k, v in rates.items()} }", flush=True)
    shutil.rmtree(folder)
    npz.unlink()
    medians = {name: round(statistics.median(values), 3) for name, values in runs.items()}
    spread = {f"{name}_range": [round(min(v), 3), round(max(v), 3)] for name, v in runs.items()}
    return {**medians, **spread, "images": images, "train_steps": steps, "repeats": repeats}


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _loader_peak_kib() -> int:
    """The largest VmHWM among this process's children (its loader processes)."""
    children = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    return max([0, *(_status_kib(child, "VmHWM") for child in children)])


def _stream_in_a_rank(folder: str, draws: int, result: Any) -> None:
    """`draws` batches of a rank (one torch thread, one loader process) from the shards in
    `folder`: the rank's VmRSS and VmHWM and its loader's VmHWM at each quarter of the way."""
    torch.set_num_threads(1)
    index = read_index(Path(folder))
    source = shard_source(Path(folder), index, workers=1)
    marks, start = [], time.perf_counter()
    for draw in range(1, draws + 1):
        source.batch(draw)
        if draw % (draws // 4) == 0:
            marks.append(
                {
                    "draws": draw,
                    "rank_rss_mib": round(_status_kib(os.getpid(), "VmRSS") / 1024, 1),
                    "rank_anon_mib": round(_status_kib(os.getpid(), "RssAnon") / 1024, 1),
                    "rank_shmem_mib": round(_status_kib(os.getpid(), "RssShmem") / 1024, 1),
                    "rank_file_mib": round(_status_kib(os.getpid(), "RssFile") / 1024, 1),
                    "rank_peak_mib": round(_status_kib(os.getpid(), "VmHWM") / 1024, 1),
                    "loader_peak_mib": round(_loader_peak_kib() / 1024, 1),
                }
            )
    result["images_per_s"] = round(draws * BATCH / (time.perf_counter() - start), 1)
    result["marks"] = marks
    source.close()


def _array_in_a_rank(path: str, result: Any) -> None:
    """The same data read whole, as a rank does without shards: its peak after one batch."""
    torch.set_num_threads(1)
    samples = torch.from_numpy(np.load(path)["data"]).permute(0, 3, 1, 2)
    ArraySource(samples, 0, 0, 1, BATCH).batch(1)
    result["rank_peak_mib"] = round(_status_kib(os.getpid(), "VmHWM") / 1024, 1)


def _in_a_process(target: Any, *args: Any) -> dict[str, Any]:
    """Run `target(*args, result)` in a fresh spawned process (its own VmHWM); its result."""
    with multiprocessing.Manager() as manager:
        result = manager.dict()
        process = multiprocessing.get_context("spawn").Process(target=target, args=(*args, result))
        process.start()
        process.join()
        return dict(result)


def memory(scratch: Path, sizes_gb: list[float], draws: int) -> list[dict[str, Any]]:
    """(b): each size written as shards, streamed `draws` batches by a rank of its own; the
    smallest also read whole into a rank from an .npz, for comparison."""
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
        index = write_dataset(folder, count, pngs)
        written_s = time.perf_counter() - started
        on_disk = sum(path.stat().st_size for path in folder.iterdir())
        run = _in_a_process(_stream_in_a_rank, str(folder), draws)
        shutil.rmtree(folder)
        run.update(
            decoded_gib=round(count * IMAGE_BYTES / 1024**3, 2),
            on_disk_gib=round(on_disk / 1024**3, 2),
            images=count,
            shards=len(index.shards),
            write_s=round(written_s, 1),
        )
        if size == min(sizes_gb):
            npz = scratch / "whole.npz"
            tiled = decoded(pngs, len(pngs)).permute(0, 2, 3, 1).numpy()
            np.savez(npz, data=np.resize(tiled, (count, SIDE, SIDE, CHANNELS)))
            run["in_memory_rank_peak_mib"] = _in_a_process(_array_in_a_rank, str(npz))[
                "rank_peak_mib"
            ]
            npz.unlink()
        print(f"memory: {run}", flush=True)
        runs.append(run)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4096, help="(a)'s dataset size")
    parser.add_argument("--steps", type=int, default=40, help="(a)'s training steps")
    parser.add_argument("--repeats", type=int, default=3, help="(a)'s alternated repeats")
    parser.add_argument("--draws", type=int, default=400, help="(b)'s batches per dataset")
    parser.add_argument("--sizes-gb", default="0.5,3", help="(b)'s decoded dataset sizes")
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/bench-shards"))
    parser.add_argument("--skip", choices=["speed", "memory"], default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    # Every side computes on one torch thread (the streaming rank keeps one beside its
    # loader process on a 2-core share), so the ratios compare data paths, not thread counts.
    torch.set_num_threads(1)
    args.scratch.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {"load_before": os.getloadavg()}
    try:
        if args.skip != "speed":
            figures["speed"] = speed(args.scratch, args.images, args.steps, args.repeats)
            print(f"speed: {figures['speed']}", flush=True)
        if args.skip != "memory":
            sizes = [float(size) for size in args.sizes_gb.split(",")]
            figures["memory"] = memory(args.scratch, sizes, args.draws)
    finally:
        shutil.rmtree(args.scratch, ignore_errors=True)
    figures["load_after"] = os.getloadavg()
    write_json(args.json, "shards", figures)


if __name__ == "__main__":
    main()
