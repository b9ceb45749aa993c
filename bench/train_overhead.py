"""The engine's training step against a plain PyTorch loop: images per second, as a ratio.

    python -m bench.train_overhead [--case dcgan|mlp|ring8|all|reporting] [--steps N]
        [--repeats R] [--threads T]

Both sides train the same networks (built by the same functions, same init), with the same
non-saturating BCE loss, Adam settings, batch size and data, in this one process. The plain
loop is the kind the PyTorch DCGAN example runs: data already in memory, shuffled once per
epoch, `torch.randn` latents, losses read with `.item()` at the same cadence as the engine's
reports (every 10 steps). The two take turns every 10 steps: at each of the engine's reports
its hook runs the plain loop's next 10 steps, so a burst of load from a neighbour on shared
cores lands on both alike (whole runs in turn, as this bench first did, gave pairs from 0.46x
to 2.28x at load 6-16). Each side's time is the sum of its own turns on the same clock, from
the first report (step 10) to the last step, so set-up and the final snapshot are outside the
window (the engine's periodic snapshots are set beyond the run). A pair is one such run; the
figure is the median of the pairs' ratios engine/plain; >= 0.97 is the bar.

`ring8` is the ring8 recipe's networks and sizes (examples/ring8.json: PacGAN2 mlp, width 128,
batch 512), without its cosine schedule and generator average, which the plain loop has not.

`--case reporting` measures something else, on servers of its own: what the service's
reporting path (the `JobReporter` through a node agent to PostgreSQL and S3) costs a step of
the ring8 recipe, against null hooks (bench/train_reporting.py; goal <= 1%).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.hooks import QuietHooks
from bench.lab import write_json
from shared.specs import TrainSpec
from tests.helpers import MNIST_DIR
from worker.gan.data import ring8_sample
from worker.gan.hooks import ProgressReport
from worker.gan.mnist_files import load_mnist_images
from worker.gan.models import build_discriminator, build_generator
from worker.gan.train import train
from worker.gan.train_common import REPORT_EVERY

# The measured window starts at the first report, after warm-up allocations.
WINDOW_START = REPORT_EVERY

CASES = {
    # 28x28 DCGAN at the published example's batch and width (about 0.9 M parameters).
    "dcgan": {
        "model": {"family": "dcgan", "width": 64},
        "latent": {"dim": 100},
        "data": {"source": "mnist", "path": str(MNIST_DIR)},
        "train": {"batch_size": 64, "lr": 2e-4, "betas": [0.5, 0.999], "seed": 0},
    },
    # The 2-D MLP GAN on ring8 at batch 512.
    "mlp": {
        "model": {"family": "mlp", "width": 128},
        "latent": {"dim": 8},
        "data": {"source": "toy:ring8"},
        "train": {"batch_size": 512, "lr": 1e-3, "betas": [0.5, 0.999], "seed": 0},
    },
}
RECIPE = Path(__file__).resolve().parents[1] / "examples" / "ring8.json"
DEFAULT_STEPS = {"dcgan": 60, "mlp": 600, "ring8": 600}


def _recipe_case(path: Path) -> dict[str, Any]:
    """A recipe's networks, data, batch and optimiser, without what the plain loop lacks."""
    raw = json.loads(path.read_text())
    kept = ("batch_size", "lr", "betas", "seed")
    train = {name: value for name, value in raw["train"].items() if name in kept}
    return {**{key: raw[key] for key in ("model", "latent", "data")}, "train": train}


CASES["ring8"] = _recipe_case(RECIPE)


class _TurnHooks(QuietHooks):
    """At each of the engine's reports, times the engine's steps since the last one, then runs
    the plain loop up to the same step (`plain`, sent the step, answers the seconds it took)."""

    def __init__(self, plain: Generator[float, int, None]) -> None:
        self.plain = plain
        self.engine_s = self.plain_s = 0.0
        self._resumed: float | None = None  # when the engine went on after the last report

    def report_progress(self, report: ProgressReport) -> None:
        reached = time.perf_counter()
        if self._resumed is not None:  # the window opens at the first report
            self.engine_s += reached - self._resumed
        plain_s = self.plain.send(report.step)
        if report.step > WINDOW_START:
            self.plain_s += plain_s
        self._resumed = time.perf_counter()


def make_spec(case: str, steps: int) -> TrainSpec:
    raw = CASES[case]
    beyond = steps + 1  # no periodic snapshot inside the window
    return TrainSpec.model_validate(
        {
            **raw,
            "train": {**raw["train"], "steps": steps},
            "checkpoint_every": beyond,
            "sample_every": beyond,
        }
    )


def interleaved_images_per_second(spec: TrainSpec) -> tuple[float, float]:
    """(plain, engine) images per second over the window, the two trained in turns."""
    plain = _plain_loop(spec)
    next(plain)  # built, waiting for its first step
    hooks = _TurnHooks(plain)
    train(spec, hooks=hooks)
    images = (spec.train.steps - WINDOW_START) * spec.train.batch_size
    return images / hooks.plain_s, images / hooks.engine_s


def _plain_loop(spec: TrainSpec) -> Generator[float, int, None]:
    """The plain loop, driven by `_TurnHooks`: each step sent trains up to it (losses read
    with `.item()` there, as the engine reads its statistics at its reports)."""
    torch.manual_seed(spec.train.seed)
    generator, discriminator = build_generator(spec), build_discriminator(spec)
    lr, betas = spec.train.lr, spec.train.betas
    g_opt = torch.optim.Adam(generator.parameters(), lr=lr, betas=betas)
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=betas)
    criterion = nn.BCEWithLogitsLoss()
    batch = spec.train.batch_size
    data = _plain_data(spec)
    order = torch.randperm(len(data))
    step, until = 0, (yield 0.0)
    while True:
        started = time.perf_counter()
        while step < until:
            step += 1
            start = ((step - 1) * batch) % (len(data) - batch + 1)
            real = data[order[start : start + batch]]
            z = torch.randn(batch, spec.latent.dim)
            fake = generator(z)
            real_logits, fake_logits = discriminator(real), discriminator(fake.detach())
            d_loss = criterion(real_logits, torch.ones_like(real_logits)) + criterion(
                fake_logits, torch.zeros_like(fake_logits)
            )
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
            out = discriminator(fake)
            g_loss = criterion(out, torch.ones_like(out))
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()
        d_loss.item(), g_loss.item()
        until = yield time.perf_counter() - started


def _plain_data(spec: TrainSpec) -> torch.Tensor:
    if spec.data.source == "mnist":
        images = load_mnist_images(MNIST_DIR)
        return (images.float() / 127.5 - 1.0).unsqueeze(1)
    return ring8_sample(100_000, torch.Generator().manual_seed(spec.train.seed))


def run_case(case: str, steps: int, repeats: int) -> dict[str, float]:
    spec = make_spec(case, steps)
    ratios, engines, plains = [], [], []
    for pair in range(1, repeats + 1):
        plain, engine = interleaved_images_per_second(spec)
        plains.append(plain)
        engines.append(engine)
        ratios.append(engine / plain)
        # Each pair as it ends: on busy shared cores a 2-thread case can take half an hour.
        print(f"  pair {pair}: plain {plain:9.1f} img/s  engine {engine:9.1f} img/s"
              f"  ratio {engine / plain:.3f}", flush=True)  # fmt: skip
    print(
        f"{case:6s} steps={steps} batch={spec.train.batch_size} threads={torch.get_num_threads()}"
        f"  plain {statistics.median(plains):9.1f} img/s  engine {statistics.median(engines):9.1f}"
        f" img/s  ratio engine/plain median {statistics.median(ratios):.3f}"
        f" (min {min(ratios):.3f}, max {max(ratios):.3f}, {repeats} pairs)"
    )
    return {
        "steps": steps,
        "batch": spec.train.batch_size,
        "threads": torch.get_num_threads(),
        "plain_img_s": round(statistics.median(plains), 1),
        "engine_img_s": round(statistics.median(engines), 1),
        "ratio": round(statistics.median(ratios), 3),
        "ratio_min": round(min(ratios), 3),
        "ratio_max": round(max(ratios), 3),
        "pairs": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=[*CASES, "all", "reporting"], default="all")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.case == "reporting":
        from bench.train_reporting import run

        if not args.threads:  # a rank's torch threads, as the lab sets them
            torch.set_num_threads(1)
        run(args.steps, args.repeats, args.json)
        return
    cases = {
        case: run_case(case, args.steps or DEFAULT_STEPS[case], args.repeats)
        for case in (CASES if args.case == "all" else [args.case])
    }
    write_json(args.json, "train_overhead", {"cases": cases})


if __name__ == "__main__":
    main()
