"""Quality over seeds: train each setup on 3 seeds with the engine and print the service's own
final evaluation (modes, % high quality, KL from uniform; W1 for 1-D; classes and class KL for
MNIST), next to the published figures, as a table and as JSON.

    .venv/bin/python -m bench.quality                      # the examples/ specs, seeds 0 1 2
    .venv/bin/python -m bench.quality --setups ring8-pacgan2-20k --seeds 0 --workers 1

The default setups are the documented example specs (`examples/*.json`, as `example-<name>`),
the configurations ganforge recommends per dataset; the others are the study behind them
(bench/quality_setups.py).

Each run is its own process with one torch thread (`--workers` at a time, 2 on this 2-core
machine); the figures are those the job itself reports (worker/gan/evaluation.py on the
generator's EMA, its final evaluation: 10,000 samples on fixed latents, each figure with its
95% bootstrap interval), so they are what a user of the service sees. `--keep DIR` writes
each run's last checkpoint, evaluation picture and sample grid there, to re-score or look
at later.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from bench.hooks import QuietHooks
from bench.quality_setups import EXAMPLE_SETUPS, PUBLISHED, SETUPS


class _Collect(QuietHooks):
    """Hooks that keep the evaluations (and, where `keep` is a folder, the last checkpoint,
    the evaluation's picture of toy data and the sample grid, named after the run) and drop
    everything else."""

    def __init__(self, keep: Path | None = None, name: str = "") -> None:
        self.evaluations: list[tuple[int, dict[str, Any]]] = []
        self.keep, self.name = keep, name

    def report_evaluation(self, step: int, metrics: dict[str, Any], png: bytes | None) -> None:
        self.evaluations.append((step, metrics))
        if self.keep is not None and png is not None:
            (self.keep / f"{self.name}.png").write_bytes(png)

    def save_checkpoint(self, step: int, data: bytes) -> None:
        if self.keep is not None:
            (self.keep / f"{self.name}.pt").write_bytes(data)

    def save_samples(self, step: int, png: bytes) -> None:
        if self.keep is not None:
            (self.keep / f"{self.name}-samples.png").write_bytes(png)


def run_one(setup: str, seed: int, keep: Path | None = None) -> dict[str, Any]:
    """Train `setup` with `seed` on one thread; its final evaluation and the minutes taken."""
    import torch

    from shared.specs import TrainSpec
    from worker.gan.train import train

    torch.set_num_threads(1)
    raw = SETUPS[setup]
    steps = raw["train"]["steps"]
    spec = TrainSpec.model_validate(
        {
            **raw,
            "train": {**raw["train"], "seed": seed},
            "checkpoint_every": steps,
            "sample_every": steps,
        }
    )
    hooks = _Collect(keep, f"{setup}-seed{seed}")
    started, cpu_started = time.perf_counter(), time.process_time()
    train(spec, hooks=hooks)
    minutes = (time.perf_counter() - started) / 60
    cpu_minutes = (time.process_time() - cpu_started) / 60
    step, metrics = hooks.evaluations[-1]
    return {
        "setup": setup, "seed": seed, "step": step, "minutes": minutes,
        "cpu_minutes": cpu_minutes, **metrics,
    }  # fmt: skip


def _with_interval(result: dict[str, Any], key: str, form: str, scale: float = 1.0) -> str:
    """`value [low, high]` of a figure and its stored 95% interval ("n/a" where undefined)."""
    value = result.get(key)
    if value is None:
        return "n/a"
    text = format(scale * value, form)
    interval = result.get(f"{key}_interval")
    if interval and None not in interval:
        low, high = (format(scale * end, form) for end in interval)
        text += f" [{low}, {high}]"
    return text


def _figures(result: dict[str, Any]) -> str:
    if "w1" in result and result.get("mode_count") == 1:
        return f"W1 {result['w1']:.3f}"
    if "class_accuracy" in result:
        return (
            f"{_with_interval(result, 'class_accuracy', '.1f', 100)}% as asked, "
            f"{result['classes_covered']}/10 classes, class KL "
            f"{_with_interval(result, 'class_kl', '.4f')}, FD {result['frechet_distance']:.1f}"
            f" ({result['class_samples']:,} samples)"
        )
    if "classes_covered" in result:
        return (
            f"{result['classes_covered']}/10 classes, class KL "
            f"{_with_interval(result, 'class_kl', '.3f')}, FD {result['frechet_distance']:.1f}"
            f" ({result['class_samples']:,} samples)"
        )
    return (
        f"{result['modes_covered']}/{result['mode_count']}, "
        f"{_with_interval(result, 'high_quality', '.1f', 100)}%, "
        f"KL {_with_interval(result, 'kl_from_uniform', '.3f')} ({result['samples']:,} samples)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--setups", nargs="*", default=list(EXAMPLE_SETUPS), choices=list(SETUPS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=Path("bench-quality.json"))
    parser.add_argument("--keep", type=Path, help="folder for each run's checkpoint and picture")
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    runs = [(setup, seed) for setup in args.setups for seed in args.seeds]
    results = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(run_one, setup, seed, args.keep) for setup, seed in runs]
        for future in as_completed(futures):
            result = future.result()
            print(
                f"{result['setup']} seed {result['seed']}: {_figures(result)}; "
                f"{result['minutes']:.1f} min, {result['cpu_minutes']:.1f} CPU-min",
                flush=True,
            )
            results.append(result)
    results.sort(key=lambda r: (args.setups.index(r["setup"]), args.seeds.index(r["seed"])))
    args.json.write_text(json.dumps(results, indent=2))
    print(
        f"| setup | steps | {' | '.join(f'seed {s}' for s in args.seeds)} | minutes | published |"
    )
    print("| --- | --- |" + " --- |" * len(args.seeds) + " --- | --- |")
    for setup in args.setups:
        rows = [r for r in results if r["setup"] == setup]
        source = SETUPS[setup]["data"]["source"]
        minutes = sum(r["minutes"] for r in rows) / len(rows)
        cells = " | ".join(_figures(r) for r in rows)
        print(f"| {setup} | {rows[0]['step']:,} | {cells} | {minutes:.1f} | {PUBLISHED[source]} |")


if __name__ == "__main__":
    main()
