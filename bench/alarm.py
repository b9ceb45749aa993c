"""The collapse alarm on real runs: train recipes in-process with the engine, record every
evaluation's figures and every warning the alarm gives, and print what it said of each run.

    .venv/bin/python -m bench.alarm                  # the default recipes, seeds 0-4 (hours)
    .venv/bin/python -m bench.alarm --recipes ring8 plain-gan --seeds 0 --workers 1
    .venv/bin/python -m bench.alarm --steps 10000    # shorter runs: not the recipes, say so

Recipes (by default): the example specs (`examples/ring8.json`, `grid25.json`,
`gauss1d.json`), which should draw no warning, and the plain GAN of the README's first
training spec on ring8 (`plain-gan`; it collapses to 1 of 8 modes), which should be warned
about, and stopped with `on_collapse: stop` (`plain-gan-stop`). By name: `mnist`
(examples/mnist.json) and `ring8-2e-4` (the service test's slower PacGAN). The figures and
warnings are those the service reports for a job (worker/gan/evaluation.py,
worker/gan/collapse_alarm.py); `--json` keeps every evaluation, and `--replay` runs the alarm
as it stands again over a recorded file.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from bench.hooks import QuietHooks
from bench.quality_setups import EXAMPLE_SETUPS, SETUPS

# The README's first training spec (as issue 23 found it): a plain GAN on ring8 that ends at
# 1 of 8 modes and 3.9% high quality on seed 0.
PLAIN_GAN: dict[str, Any] = {
    "model": {"family": "mlp", "width": 128},
    "latent": {"dim": 8, "prior": "gaussian"},
    "loss": "non_saturating",
    "data": {"source": "toy:ring8"},
    "train": {"steps": 2000, "batch_size": 256, "lr": 0.001, "betas": [0.5, 0.999]},
    "checkpoint_every": 500,
    "sample_every": 250,
}

RECIPES: dict[str, dict[str, Any]] = {
    # The example specs (examples/*.json; MNIST's data path taken from the repository root).
    **{name.removeprefix("example-"): spec for name, spec in EXAMPLE_SETUPS.items()},
    "plain-gan": PLAIN_GAN,
    "plain-gan-stop": {**PLAIN_GAN, "on_collapse": "stop"},
    # What tests/e2e/test_service.py's quality test trains through the service, expecting no
    # warning: PacGAN2 at a constant 2e-4, slower to sharpen its modes than the examples.
    "ring8-2e-4": {
        **SETUPS["ring8-pacgan2-20k"],
        "train": {**SETUPS["ring8-pacgan2-20k"]["train"], "steps": 10_000},
        "sample_every": 2500,
    },
}
# What the goal is measured on: the toy examples must draw no warning, the plain GAN
# must (MNIST's example trains 10,000 DCGAN steps, 12-15 min a run: ask for it by name).
DEFAULT_RECIPES = ("ring8", "grid25", "gauss1d", "plain-gan", "plain-gan-stop")


class _Record(QuietHooks):
    """Hooks that keep the evaluations and the warnings (each with the step it began at and,
    once it ends, the step it ended at); a warning with `stop` stops the run at its next
    stop check, as the service's supervisor does."""

    def __init__(self) -> None:
        self.evaluations: list[tuple[int, dict[str, Any]]] = []
        self.warnings: list[dict[str, Any]] = []
        self.stopping = False

    def should_stop(self) -> bool:
        return self.stopping

    def report_evaluation(self, step: int, metrics: dict[str, Any], png: bytes | None) -> None:
        self.evaluations.append((step, metrics))

    def warn(self, message: str, stop: bool, kind: str = "collapse") -> None:
        self.warnings.append(
            {"kind": kind, "step": self._step, "ended_step": None, "message": message}
        )
        self.stopping = self.stopping or stop

    def end_warning(self, kind: str, message: str) -> None:
        for warning in reversed(self.warnings):
            if warning["kind"] == kind and warning["ended_step"] is None:
                warning["ended_step"] = self._step
                return

    @property
    def _step(self) -> int:
        return self.evaluations[-1][0] if self.evaluations else 0


def run_one(recipe: str, seed: int, steps: int | None) -> dict[str, Any]:
    """Train `recipe` with `seed` on one thread; every evaluation and warning, and the step
    it ended at."""
    import torch

    from shared.specs import TrainSpec
    from worker.gan.train import train

    torch.set_num_threads(1)
    raw = RECIPES[recipe]
    train_params = {**raw["train"], "seed": seed, **({"steps": steps} if steps else {})}
    spec = TrainSpec.model_validate({**raw, "train": train_params})
    hooks = _Record()
    started = time.perf_counter()
    result = train(spec, hooks=hooks)
    return {
        "recipe": recipe,
        "seed": seed,
        "steps": spec.train.steps,
        "ended_at": result.step,
        "stopped_early": result.stopped_early,
        "minutes": (time.perf_counter() - started) / 60,
        "evaluations": [{"step": step, **metrics} for step, metrics in hooks.evaluations],
        "warnings": hooks.warnings,
    }


def figures(metrics: dict[str, Any]) -> str:
    """A run's evaluation in a few words: W1 for the line, modes for the plane, classes for
    digits."""
    if metrics.get("mode_count") == 1 and "w1" in metrics:
        return f"W1 {metrics['w1']:.3f}"
    if "classes_covered" in metrics:
        return f"{metrics['classes_covered']}/10 classes, class KL {metrics['class_kl']:.3f}"
    kl = metrics.get("kl_from_uniform")
    return (
        f"{metrics['modes_covered']}/{metrics['mode_count']}, "
        f"{100 * metrics['high_quality']:.1f}% hq, KL {'n/a' if kl is None else f'{kl:.3f}'}"
    )


def warnings_cell(warnings: list[dict[str, Any]]) -> str:
    """Each warning's kind, the steps it began and ended at, and what it said."""
    if not warnings:
        return "none"
    spans = [
        (w, f"{w['step']:,}-" + ("" if w["ended_step"] is None else f"{w['ended_step']:,}"))
        for w in warnings
    ]
    return "; ".join(f"{w['kind']} {span} ({w['message']})" for w, span in spans)


def replay(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The alarm as it stands run again over recorded evaluations (a `--json` file, perhaps
    from an earlier alarm): each run's warnings replaced by what it says now. The mode
    figures' sample sizes and intervals are computed again from their per-mode counts, as
    the evaluation computes them now (recordings from before they existed have none)."""
    import torch

    from shared.specs import TrainSpec
    from worker.gan.collapse_alarm import CollapseWatch
    from worker.gan.evaluation import EVAL_SAMPLES
    from worker.gan.mode_coverage import mode_intervals

    replayed = []
    for result in results:
        raw = RECIPES[result["recipe"]]
        spec = TrainSpec.model_validate(
            {**raw, "train": {**raw["train"], "steps": result["steps"]}}
        )
        watch = CollapseWatch(warmup=spec.alarm_warmup)
        warnings: list[dict[str, Any]] = []
        for evaluation in result["evaluations"]:
            metrics = dict(evaluation)
            if "mode_counts" in metrics:
                counts = torch.tensor(metrics["mode_counts"], dtype=torch.float64)
                metrics["samples"] = metrics.get("samples", EVAL_SAMPLES)
                metrics["high_quality_samples"] = int(counts.sum())
                metrics.update(mode_intervals(counts, metrics["samples"]))
            for event in watch.check(metrics["step"], metrics):
                if event.ends:
                    opened = next(w for w in reversed(warnings) if w["kind"] == event.kind)
                    opened["ended_step"] = event.step
                else:
                    warnings.append(
                        {"kind": event.kind, "step": event.step, "ended_step": None,
                         "message": event.message}
                    )  # fmt: skip
        replayed.append({**result, "warnings": warnings})
    return replayed


def print_table(results: list[dict[str, Any]]) -> None:
    print("| recipe | seed | steps | final figures | warnings (kind begin-end step) |")
    print("| --- | --- | --- | --- | --- |")
    for r in results:
        ended = f"{r['ended_at']:,}" + (" (stopped)" if r["stopped_early"] else "")
        print(
            f"| {r['recipe']} | {r['seed']} | {ended} | {figures(r['evaluations'][-1])} | "
            f"{warnings_cell(r['warnings'])} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--recipes", nargs="*", default=list(DEFAULT_RECIPES), choices=list(RECIPES)
    )
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=None, help="Override every recipe's steps.")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=Path("bench-alarm.json"))
    parser.add_argument(
        "--replay", type=Path, default=None,
        help="Train nothing: run the alarm again over this file's recorded evaluations.",
    )  # fmt: skip
    args = parser.parse_args()
    if args.replay is not None:
        print_table(replay(json.loads(args.replay.read_text())))
        return
    runs = [(recipe, seed) for recipe in args.recipes for seed in args.seeds]
    results = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(run_one, recipe, seed, args.steps) for recipe, seed in runs]
        for future in as_completed(futures):
            result = future.result()
            print(
                f"{result['recipe']} seed {result['seed']} ({result['minutes']:.1f} min): "
                f"{figures(result['evaluations'][-1])}; "
                f"warnings: {warnings_cell(result['warnings'])}",
                flush=True,
            )
            results.append(result)
            # Written as each run ends: the whole set takes hours on two shared cores.
            results.sort(
                key=lambda r: (args.recipes.index(r["recipe"]), args.seeds.index(r["seed"]))
            )
            args.json.write_text(json.dumps(results, indent=1))
    print_table(results)


if __name__ == "__main__":
    main()
