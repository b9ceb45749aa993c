"""What a GPU machine does with ganforge, in one script and one JSON: run it the day one is lent.

    python -m bench.gpu_check [--json bench-gpu.json] [--steps 200] [--budget-s 420]
    python -m bench.gpu_check --cpu-smoke      # every section, tiny, on the CPU (the suite's)

1. **Devices** as the worker registers them (`worker.node.detect_devices`: nvidia-smi, else
   CPU slots), and as torch sees them (count, names, compute capability, versions).
2. **Step throughput** of each `gpu_throughput.MODEL_CASES` entry (the 64 px `dcgan`, the
   128 px `dcgan`, the 128 px `stylegan2` once that family exists: until then "not
   available") in fp32, bf16 and fp16, batch 64, on the repository's MNIST slice as RGB:
   images per second as the engine reports them, past a warm-up window. Each run records
   what it ran as, its memory format (the engine picks channels-last for dcgan on CUDA),
   whether it scaled its losses (fp16: the engine's GradScaler) and its peak GPU memory; each
   model has each mixed precision's ratio over fp32 and whether the goal (>= 1.5x) is met.
3. **Warm sampling**: 64 images from each model's fp32 checkpoint, loaded once, drawn 10
   times (`worker.gan.sample.sample_for_seeds`, the warm sampler's call): milliseconds.
4. **Two ranks** of a short 64 px dcgan run over NCCL where two GPUs exist; else the JSON
   says it needs them. (The CPU smoke runs the same code over gloo.)

A time budget (`--budget-s`, default 7 minutes: the issue asks for under 8 on one H100) is
shared out between the sections; a run that would not fit what its section has left is
skipped, and the JSON says so, rather than overrunning. Without CUDA only the discovery runs
(the JSON says so, exit 0); `--cpu-smoke` runs every section with a few steps of a tiny
model at 32 px, to check the script's code, not to time anything.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from bench.gpu_throughput import (
    MODEL_CASES,
    PRECISIONS,
    RunSize,
    availability,
    case_spec,
    timed_run,
    with_ratios,
)
from bench.hooks import QuietHooks
from worker.gan.distributed import Backend

SAMPLE_IMAGES = 64
SAMPLE_REPEATS = 10
# The bound is 8 minutes; 7 leaves a minute for start-up and the JSON.
DEFAULT_BUDGET_S = 420.0
# Shares of the budget, in order; what a section leaves unused passes to the next.
SECTION_SHARES = {"throughput": 0.7, "warm_sampling": 0.05, "two_ranks": 0.25}
# A run is started only when its section has this many times the last run's time left.
RUN_MARGIN = 1.5
# The GPU runs: batch 64 as in pytorch/examples; the smoke's: tiny and 32 px.
GPU_SIZE = RunSize(steps=200, batch=64)
SMOKE_SIZE = RunSize(steps=12, batch=2, width=4, side=32)


class Budget:
    """Seconds left to the whole check, and to the section running now."""

    def __init__(self, seconds: float) -> None:
        self.ends = time.monotonic() + seconds
        self.section_ends = self.ends

    def start(self, section: str) -> None:
        """The section gets its share of what is left, and what earlier ones left over."""
        shares = list(SECTION_SHARES)
        later = sum(SECTION_SHARES[name] for name in shares[shares.index(section) :])
        self.section_ends = time.monotonic() + self.left() * SECTION_SHARES[section] / later

    def left(self) -> float:
        return max(0.0, self.ends - time.monotonic())

    def fits(self, seconds: float) -> bool:
        """Whether a step expected to take `seconds` fits the section, with RUN_MARGIN."""
        return time.monotonic() + seconds * RUN_MARGIN <= self.section_ends


def mnist_data() -> dict[str, Any]:
    from tests.helpers import MNIST_DIR

    return {"source": "mnist", "path": str(MNIST_DIR)}


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


def throughput(
    device: torch.device, size: RunSize, budget: Budget
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Each model's figures per precision, and its fp32 checkpoint for the sampling section."""
    results: dict[str, Any] = {}
    checkpoints: dict[str, bytes] = {}
    data, last_run = mnist_data(), 0.0
    for case in MODEL_CASES:
        refused = availability(case, size, data)
        if refused is not None:
            results[case.name] = {"side": case.side, "skipped": refused}
            continue
        figures: dict[str, Any] = {"side": size.side or case.side, "batch": size.batch}
        for precision in PRECISIONS:
            if not budget.fits(last_run):
                figures[precision] = {"skipped": "over the throughput section's time budget"}
                continue
            began = time.monotonic()
            spec = case_spec(case, precision, size, data)
            figures[precision], checkpoint = timed_run(spec, device)
            last_run = time.monotonic() - began
            if precision == "fp32" and checkpoint is not None:
                checkpoints[case.name] = checkpoint
        results[case.name] = with_ratios(figures)
    return results, checkpoints


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


def _rank(rank: int, world_size: int, port: int, size: RunSize, backend: Backend) -> None:
    from worker.gan.distributed import process_group
    from worker.gan.train import train

    device = torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")
    if backend == "nccl":
        torch.cuda.set_device(rank)
    # The worker's own group: every rank passes a barrier before any leaves (one leaving
    # early aborted its peer under load: "terminate called without an active exception").
    with process_group(rank, world_size, port, backend):
        spec = case_spec(MODEL_CASES[0], "bf16", size, mnist_data())
        train(spec, hooks=QuietHooks(), rank=rank, world_size=world_size, device=device)


def two_ranks(size: RunSize, budget: Budget, backend: Backend) -> dict[str, Any]:
    """A 2-rank dcgan run over NCCL when two GPUs exist (gloo in the CPU smoke); else why not."""
    count = torch.cuda.device_count()
    if backend == "nccl" and count < 2:
        return {"skipped": f"needs 2 GPUs, found {count}"}
    if budget.section_ends - time.monotonic() <= 0:
        return {"skipped": "no time left in the budget"}
    import torch.multiprocessing as mp

    from worker.gan.distributed import find_free_port

    began = time.perf_counter()
    mp.spawn(_rank, args=(2, find_free_port(), size, backend), nprocs=2, join=True)
    seconds = time.perf_counter() - began
    return {"backend": backend, "world_size": 2, "steps": size.steps,
            "seconds": round(seconds, 1)}  # fmt: skip


def run(steps: int, cpu_smoke: bool, budget_s: float = DEFAULT_BUDGET_S) -> dict[str, Any]:
    """Every section in order, within `budget_s`; the figures as one dict."""
    budget = Budget(budget_s)
    results: dict[str, Any] = {"devices": devices(), "budget_s": budget_s}
    cuda = results["devices"]["cuda"]
    if not cuda and not cpu_smoke:
        results["skipped"] = "no CUDA device here: only the device discovery ran"
        return results
    device = torch.device("cuda" if cuda else "cpu")
    size = RunSize(steps, GPU_SIZE.batch) if cuda else SMOKE_SIZE
    budget.start("throughput")
    results["throughput"], checkpoints = throughput(device, size, budget)
    budget.start("warm_sampling")
    results["warm_sampling"] = {
        name: warm_sampling(checkpoint, device) for name, checkpoint in checkpoints.items()
    }
    budget.start("two_ranks")
    results["two_ranks"] = two_ranks(size, budget, "nccl" if cuda else "gloo")
    results["seconds"] = round(budget_s - budget.left(), 1)
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=Path("bench-gpu.json"))
    parser.add_argument("--steps", type=int, default=GPU_SIZE.steps, help="steps of each run")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S)
    parser.add_argument("--cpu-smoke", action="store_true", help="every section, tiny, on CPU")
    args = parser.parse_args(argv)
    results = run(args.steps, args.cpu_smoke, args.budget_s)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
