"""A short probe of one `bench.quality` setup: train it on one seed with the service's own
evaluation every `--every` steps (600 digits for MNIST, the final one 10,000), printing each
evaluation's figures and keeping each sample grid, so a recipe that collapses shows it in
minutes instead of at the end of a full run.

    .venv/bin/python -m bench.quality_probe mnist-stylegan2-ada-1k --steps 500 --every 250 \\
        --keep /tmp/probes

Four switches exist only to locate a fault, never in a recipe: `--mbstd-group N` sets the
stylegan2 discriminator's minibatch-std group (StyleGAN2's 4; StyleGAN2-ADA's CIFAR-10 config
32); `--swap dcgan-d|dcgan-g` trains stylegan2's generator against the dcgan family's
discriminator (or dcgan's generator against stylegan2's), so a collapse can be pinned on
one network; `--no-demodulation` builds stylegan2's style convolutions without weight
demodulation; `--mapping-lr-multiplier X` replaces StyleGAN2's 0.01. All patch module
globals in this process only.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench.hooks import QuietHooks
from bench.quality import SETUPS

# The figures printed per evaluation, as the job reports them.
_FIGURES = ("classes_covered", "class_kl", "frechet_distance", "precision", "recall")


class _Probe(QuietHooks):
    """Hooks that print each evaluation and keep its sample grid as `<step>.png`."""

    def __init__(self, keep: Path | None) -> None:
        self.keep = keep
        self.started = time.process_time()

    def report_evaluation(self, step: int, metrics: dict[str, Any], png: bytes | None) -> None:
        figures = {name: metrics.get(name) for name in _FIGURES if name in metrics}
        cpu = (time.process_time() - self.started) / 60
        print(f"step {step}: {json.dumps(figures)}; {cpu:.1f} CPU-min", flush=True)

    def save_samples(self, step: int, png: bytes) -> None:
        if self.keep is not None:
            (self.keep / f"{step}.png").write_bytes(png)


def _patch(
    mbstd_group: int | None, swap: str | None, demodulate: bool, mapping_lr: float | None
) -> None:
    """The fault-finding switches (module docstring)."""
    import worker.gan.models as models
    import worker.gan.stylegan as stylegan

    if mbstd_group is not None:
        stylegan.MBSTD_GROUP = mbstd_group
    if mapping_lr is not None:
        stylegan.MAPPING_LR_MULTIPLIER = mapping_lr
    if not demodulate:
        stylegan.ModulatedConv2d.__init__.__defaults__ = (False,)
    if swap == "dcgan-d":
        models._BUILDERS["stylegan2"] = (models._style_generator, models._dcgan_discriminator)
    elif swap == "dcgan-g":
        models._BUILDERS["stylegan2"] = (models._dcgan_generator, models._style_discriminator)


def probe(setup: str, seed: int, steps: int, every: int, keep: Path | None) -> None:
    """Train `setup` for `steps` on one thread, evaluating every `every` steps."""
    import torch

    from shared.specs import TrainSpec
    from worker.gan.train import train

    torch.set_num_threads(1)
    raw = SETUPS[setup]
    spec = TrainSpec.model_validate(
        {
            **raw,
            "train": {**raw["train"], "steps": steps, "seed": seed},
            "checkpoint_every": steps,
            "sample_every": every,
        }
    )
    train(spec, hooks=_Probe(keep))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("setup", choices=list(SETUPS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, help="default: the setup's")
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--keep", type=Path, help="folder for the sample grids")
    parser.add_argument("--mbstd-group", type=int)
    parser.add_argument("--swap", choices=["dcgan-d", "dcgan-g"])
    parser.add_argument("--no-demodulation", action="store_true")
    parser.add_argument("--mapping-lr-multiplier", type=float)
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    _patch(args.mbstd_group, args.swap, not args.no_demodulation, args.mapping_lr_multiplier)
    steps = args.steps or SETUPS[args.setup]["train"]["steps"]
    probe(args.setup, args.seed, steps, args.every, args.keep)


if __name__ == "__main__":
    main()
