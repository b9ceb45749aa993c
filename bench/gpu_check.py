"""What a GPU machine does with ganforge, in one script and one JSON: run it the day one is lent.

    python -m bench.gpu_check [--json bench-gpu.json] [--steps 60]   # `make gpu-check`
    python -m bench.gpu_check --cpu-smoke                             # the script itself, on a CPU

1. **Devices** as the worker sees them (`worker.node.detect_devices`: nvidia-smi, else CPU
   slots), and as torch sees them (count, names, compute capability, torch and CUDA versions).
2. **Step throughput** of the 64 px `dcgan` (width 64, batch 64) on the repository's MNIST
   slice in fp32, bf16 and fp16 (channels-last is the engine's own choice for dcgan on CUDA,
   worker/gan/step.py): images per second over the steps between a short and a long run, so
   start-up, data loading and the final checkpoint cancel out. Goal: a mixed-precision path at
   least 1.5x fp32.
3. **Warm sampling**: 64 images from the fp32 run's checkpoint, loaded once, drawn 10 times
   (`worker.gan.sample.sample_for_seeds`, the warm sampler's own call): median milliseconds.
4. **Two ranks over NCCL** where two GPUs exist (a short dcgan run with world size 2); else
   the JSON says it needs them.

Nothing here runs on a machine without CUDA but the device discovery (the JSON says so and
the script exits 0); `--cpu-smoke` runs every section on the CPU with a few steps of a 32 px
model, to check the script, not to time anything. Budget on one H100: well under 8 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from bench.hooks import QuietHooks

GOAL_MIXED_OVER_FP32 = 1.5
PRECISIONS = ("fp32", "bf16", "fp16")
SAMPLE_IMAGES = 64
SAMPLE_REPEATS = 10
# The short run whose time is taken off the long one's.
SHORT_STEPS = 10


class _KeepCheckpoint(QuietHooks):
    """Hooks keeping the last checkpoint's bytes (for the warm-sampling section)."""

    def __init__(self) -> None:
        self.checkpoint: bytes | None = None

    def save_checkpoint(self, step: int, data: bytes) -> None:
        self.checkpoint = data


def _spec(precision: str, steps: int, resize: int, width: int, batch: int) -> Any:
    from shared.specs import TrainSpec
    from tests.helpers import MNIST_DIR

    return TrainSpec.model_validate(
        {
            "model": {"family": "dcgan", "width": width},
            "latent": {"dim": 64},
            "data": {"source": "mnist", "path": str(MNIST_DIR), "resize": resize},
            "train": {"steps": steps, "batch_size": batch, "seed": 0},
            "precision": precision,
            "checkpoint_every": steps,
            "sample_every": steps,
        }
    )


def devices() -> dict[str, Any]:
    """The node's devices as the worker registers them, and what torch finds."""
    from shared.config import Settings
    from worker.node import detect_devices

    cuda = torch.cuda.is_available()
    return {
        "worker_sees": detect_devices(Settings.from_env()),
        "cuda": cuda,
        "torch": torch.__version__,
        "cuda_version": torch.version.cuda,
        "gpus": [
            {
                "name": torch.cuda.get_device_name(index),
                "capability": ".".join(map(str, torch.cuda.get_device_capability(index))),
            }
            for index in range(torch.cuda.device_count())
        ]
        if cuda
        else [],
        "host": platform.node(),
    }


def _timed_run(spec: Any, device: torch.device, hooks: QuietHooks) -> float:
    from worker.gan.train import train

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    began = time.perf_counter()
    train(spec, hooks=hooks, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - began


def throughput(
    device: torch.device, steps: int, resize: int, width: int, batch: int
) -> dict[str, Any]:
    """Images per second of each precision (the long run less the short one), and the fp32
    run's last checkpoint for the sampling section."""
    figures: dict[str, Any] = {}
    checkpoint = None
    # A first run pays for imports, the data's first read and the kernels' first launch.
    _timed_run(_spec("fp32", SHORT_STEPS, resize, width, batch), device, QuietHooks())
    for precision in PRECISIONS:
        if precision == "fp16" and device.type != "cuda":
            figures[precision] = {"skipped": "fp16 needs a GPU"}
            continue
        hooks = _KeepCheckpoint()
        short = _timed_run(_spec(precision, SHORT_STEPS, resize, width, batch), device, hooks)
        long = _timed_run(_spec(precision, steps, resize, width, batch), device, hooks)
        timed_steps = steps - SHORT_STEPS
        if long <= short:  # too few steps to tell them apart (the CPU smoke run)
            figures[precision] = {"unmeasured": f"{steps} steps took no longer than 10"}
            continue
        rate = timed_steps * batch / (long - short)
        figures[precision] = {"images_per_second": round(rate, 1), "steps_timed": timed_steps}
        if precision == "fp32":
            checkpoint = hooks.checkpoint
    base = figures["fp32"].get("images_per_second")
    for precision in ("bf16", "fp16"):
        if base and "images_per_second" in figures[precision]:
            figures[precision]["over_fp32"] = round(
                figures[precision]["images_per_second"] / base, 2
            )
    best = max((f.get("over_fp32", 0.0) for f in figures.values()), default=0.0)
    figures["goal"] = {"mixed_over_fp32_at_least": GOAL_MIXED_OVER_FP32,
                       "met": best >= GOAL_MIXED_OVER_FP32}  # fmt: skip
    figures["_checkpoint"] = checkpoint
    return figures


def warm_sampling(checkpoint: bytes, device: torch.device) -> dict[str, Any]:
    """Milliseconds for 64 images from a checkpoint loaded once (the warm sampler's case)."""
    from worker.gan.checkpoint import load_checkpoint
    from worker.gan.sample import sample_for_seeds

    loaded = load_checkpoint(checkpoint, device)
    seeds = list(range(SAMPLE_IMAGES))
    times = []
    for _ in range(SAMPLE_REPEATS + 1):  # the first pays for kernels and caches
        began = time.perf_counter()
        sample_for_seeds(loaded, seeds, device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - began) * 1000)
    kept = times[1:]
    return {"images": SAMPLE_IMAGES, "median_ms": round(statistics.median(kept), 1),
            "min_ms": round(min(kept), 1), "max_ms": round(max(kept), 1)}  # fmt: skip


def _nccl_rank(rank: int, world_size: int, port: int, steps: int) -> None:
    import torch.distributed as dist

    from worker.gan.train import train

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=world_size)
    try:
        train(_spec("bf16", steps, 64, 64, 64), hooks=QuietHooks(), rank=rank,
              world_size=world_size, device=torch.device("cuda", rank))  # fmt: skip
    finally:
        dist.destroy_process_group()


def two_ranks(steps: int) -> dict[str, Any]:
    """A 2-rank NCCL dcgan run when two GPUs exist; else why not."""
    count = torch.cuda.device_count()
    if count < 2:
        return {"skipped": f"needs 2 GPUs, found {count}"}
    import torch.multiprocessing as mp

    from worker.gan.distributed import find_free_port

    began = time.perf_counter()
    mp.spawn(_nccl_rank, args=(2, find_free_port(), steps), nprocs=2, join=True)
    return {"world_size": 2, "steps": steps, "seconds": round(time.perf_counter() - began, 1)}


def run(steps: int, cpu_smoke: bool) -> dict[str, Any]:
    results: dict[str, Any] = {"devices": devices()}
    if not results["devices"]["cuda"] and not cpu_smoke:
        results["skipped"] = "no CUDA device here: only the device discovery ran"
        return results
    device = torch.device("cuda" if results["devices"]["cuda"] else "cpu")
    resize, width, batch = (64, 64, 64) if device.type == "cuda" else (32, 8, 8)
    steps = steps if device.type == "cuda" else SHORT_STEPS + 2
    speed = throughput(device, steps, resize, width, batch)
    checkpoint = speed.pop("_checkpoint")
    results["throughput"] = {"resize": resize, "width": width, "batch": batch, **speed}
    if checkpoint is not None:
        results["warm_sampling"] = warm_sampling(checkpoint, device)
    results["two_ranks"] = (
        two_ranks(steps) if device.type == "cuda" else {"skipped": "NCCL needs GPUs"}
    )
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=Path("bench-gpu.json"))
    parser.add_argument("--steps", type=int, default=60, help="the long run's steps")
    parser.add_argument("--cpu-smoke", action="store_true", help="every section, tiny, on CPU")
    args = parser.parse_args(argv)
    results = run(args.steps, args.cpu_smoke)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
