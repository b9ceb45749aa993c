"""A short probe of one `bench.quality` setup: train it on one seed with the service's own
evaluation every `--every` steps (600 digits for MNIST, the final one 10,000), printing each
evaluation's figures and keeping each sample grid, so a recipe that collapses shows it in
minutes instead of at the end of a full run.

    .venv/bin/python -m bench.quality_probe mnist-stylegan2-ada-1k --steps 500 --every 250 \\
        --keep /tmp/probes

Switches exist only to locate a fault, never in a recipe: `--mbstd-group N` sets the
stylegan2 discriminator's minibatch-std group (StyleGAN2's 4; StyleGAN2-ADA's CIFAR-10 config
32); `--swap dcgan-d|dcgan-g` trains stylegan2's generator against the dcgan family's
discriminator (or dcgan's generator against stylegan2's), so a collapse can be pinned on
one network; `--no-demodulation` builds stylegan2's style convolutions without weight
demodulation; `--mapping-lr-multiplier X` replaces StyleGAN2's 0.01. Four more try cures for
the stylegan2 generator's collapse (issue 25): `--input-from-w` draws the 4x4 input from w
instead of the learnt constant, `--style-mixing P` mixes two w's with probability P,
`--g-lr-scale X` scales G's learning rate only, `--g-batchnorm` batch-normalises each
modulated convolution's output. All patch module globals in this process only.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench.hooks import QuietHooks
from bench.quality_setups import SETUPS

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


def _patch_generator(input_from_w: bool, mixing: float) -> None:
    """Generator experiments (issue 25): `input_from_w` replaces the learnt 4x4 constant with
    an equalised linear map of the first layer's w (dcgan's G, which does not collapse, draws
    its 4x4 from z); `mixing` is StyleGAN2's style-mixing probability (two w's, the second
    another sample's of the batch, crossing over at a random layer; training forwards only)."""
    import torch

    import worker.gan.stylegan as stylegan

    cls = stylegan.StyleGenerator
    if input_from_w:
        init = cls.__init__

        def __init__(self: Any, inputs: int, w_dim: int, *args: Any) -> None:
            init(self, inputs, w_dim, *args)
            channels = self.const.shape[0]
            self.input_map = stylegan.EqualLinear(w_dim, channels * 16)

        cls.__init__ = __init__
        cls.synthesis_ws = lambda self, ws: self.synthesis_from(
            ws, self.input_map(ws[:, 0]).reshape(ws.shape[0], *self.const.shape)
        )
    if mixing:
        forward = cls.forward

        def mixed_forward(self: Any, z: Any, psi: float = 1.0, return_ws: bool = False) -> Any:
            if not self.training or psi != 1:
                return forward(self, z, psi, return_ws)
            ws = self.to_w(z).unsqueeze(1).repeat(1, self.num_ws, 1)
            source = self.layers[0].noise_source
            draw = torch.rand(ws.shape[0], generator=source)
            cut = torch.randint(1, self.num_ws, (ws.shape[0],), generator=source)
            cut = torch.where(draw < mixing, cut, torch.full_like(cut, self.num_ws))
            later = torch.arange(self.num_ws)[None, :] >= cut[:, None]
            ws = torch.where(later[:, :, None], ws.roll(1, dims=0), ws)
            image = self.synthesis_ws(ws)
            return (image, ws) if return_ws else image

        cls.forward = mixed_forward


def _patch_batchnorm(on: bool) -> None:
    """Generator experiment (issue 25): batch normalisation (no affine) after each style
    layer's modulated convolution, as dcgan's G (which does not collapse) has after each of its
    convolutions; in eval mode it uses the running statistics."""
    if not on:
        return
    from torch import nn

    import worker.gan.stylegan as stylegan

    cls, init = stylegan.ModulatedConv2d, stylegan.ModulatedConv2d.__init__
    forward = cls.forward

    def __init__(self: Any, inputs: int, outputs: int, kernel: int, *args: Any, **kw: Any) -> None:
        init(self, inputs, outputs, kernel, *args, **kw)
        self.norm = nn.BatchNorm2d(outputs, affine=False) if self.demodulate else None

    def normed(self: Any, x: Any, w: Any) -> Any:
        x = forward(self, x, w)
        return x if self.norm is None else self.norm(x)

    cls.__init__ = __init__
    cls.forward = normed


def _patch_tanh(on: bool) -> None:
    """Generator experiment (issue 25): tanh on the image, as dcgan's G (which does not
    collapse) has; MNIST's background is exactly -1 on three pixels in four."""
    if not on:
        return
    import torch

    import worker.gan.stylegan as stylegan

    synthesis_ws = stylegan.StyleGenerator.synthesis_ws
    stylegan.StyleGenerator.synthesis_ws = lambda self, ws: torch.tanh(synthesis_ws(self, ws))


def _patch_g_lr(scale: float | None) -> None:
    """Generator experiment (issue 25): G's Adam learning rate times `scale`, D's unchanged."""
    if scale is None:
        return
    import worker.gan.train as train_module

    build = train_module._build_networks

    def scaled(*args: Any) -> Any:
        nets = build(*args)
        for group in nets.g_optimizer.param_groups:
            group["lr"] *= scale
        return nets

    train_module._build_networks = scaled


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
    parser.add_argument("--input-from-w", action="store_true")
    parser.add_argument("--style-mixing", type=float, default=0.0)
    parser.add_argument("--g-lr-scale", type=float)
    parser.add_argument("--g-batchnorm", action="store_true")
    parser.add_argument("--tanh", action="store_true")
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    _patch(args.mbstd_group, args.swap, not args.no_demodulation, args.mapping_lr_multiplier)
    _patch_generator(args.input_from_w, args.style_mixing)
    _patch_g_lr(args.g_lr_scale)
    _patch_batchnorm(args.g_batchnorm)
    _patch_tanh(args.tanh)
    steps = args.steps or SETUPS[args.setup]["train"]["steps"]
    probe(args.setup, args.seed, steps, args.every, args.keep)


if __name__ == "__main__":
    main()
