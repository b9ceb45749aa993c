"""A custom model trains with everything the built-in families get: a copy of the mlp
networks as a code bundle (tests/data/bundles/mlp_copy) ends bit for bit where `mlp` does
under several losses and options, resumes bitwise, and its checkpoint samples, inverts,
evaluates and exports; an image model of one's own does the same; and the example plugin
(examples/byo/plugin) trains from its README's spec."""

from __future__ import annotations

import io
import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from gan_testing import (
    BUNDLES_DIR,
    RecordingHooks,
    assert_bitwise_equal,
    custom_ring_spec,
    registered_bundle,
    ring_spec,
    stop_then_resume,
    trained_checkpoint,
)
from PIL import Image

from shared.specs import SampleSpec, TrainSpec
from tests.data_builders import write_npz
from worker.gan.data import resolve_data
from worker.gan.evaluation import evaluate_checkpoint
from worker.gan.export import export_generator
from worker.gan.inversion import InversionSettings, invert
from worker.gan.sample import load_generator, sample_for_spec
from worker.gan.train import train

CPU = torch.device("cpu")
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "byo" / "plugin"
STATE_KEYS = ("generator", "discriminator", "g_optimizer", "d_optimizer", "generator_ema")
# Options the mlp copy is trained under, each against `"family": "mlp"` with the same ones.
SETUPS: dict[str, dict[str, Any]] = {
    "pack2-ema": {"model": {"pack": 2}, "train": {"ema_decay": 0.9}},
    "wgan_gp": {"loss": {"name": "wgan_gp", "critic_steps": 2}},
    "hinge-r1-bf16-cosine-batchnorm": {
        "model": {"generator_norm": "batch"},
        "loss": {"name": "hinge", "r1_gamma": 1.0},
        "precision": "bf16",
        "resources": {"device_type": "cpu"},
        "train": {"lr_schedule": "cosine"},
    },
}


def _mlp_and_its_copy(setup: dict[str, Any], steps: int = 12) -> tuple[TrainSpec, TrainSpec]:
    code = registered_bundle(BUNDLES_DIR / "mlp_copy")
    model, others = setup.get("model", {}), {k: v for k, v in setup.items() if k != "model"}
    others["train"] = {"steps": steps, "batch_size": 32, "seed": 7, **setup.get("train", {})}
    built_in = ring_spec(model={"family": "mlp", "width": 16, **model}, **others)
    batch_norm = model.get("generator_norm") == "batch"
    copied = {
        "pack": model.get("pack", 1),
        "generator_args": {"width": 16, "batch_norm": batch_norm},
        "discriminator_args": {"width": 16},
    }
    return built_in, custom_ring_spec(code, "mlp_copy.nets", model=copied, **others)


@pytest.mark.parametrize("setup", SETUPS.values(), ids=SETUPS.keys())
def test_a_copy_of_the_mlp_networks_trains_to_the_same_weights_bit_for_bit(
    setup: dict[str, Any],
) -> None:
    built_in, custom = _mlp_and_its_copy(setup)
    ends = []
    for spec in (built_in, custom):
        hooks = RecordingHooks()
        train(spec, hooks=hooks)
        ends.append((hooks.last_checkpoint, hooks.samples[-1]))
    (mlp, mlp_samples), (copy, copy_samples) = ends
    for key in (*STATE_KEYS, "rng_states", "fixed_latents"):
        assert_bitwise_equal(mlp[key], copy[key])
    assert mlp_samples == copy_samples


def test_a_stopped_and_resumed_custom_run_ends_bitwise_equal_to_an_unbroken_one() -> None:
    _, custom = _mlp_and_its_copy(SETUPS["pack2-ema"], steps=20)
    whole, resumed = stop_then_resume(custom)
    assert resumed.lines[0].startswith("resuming custom")
    assert_bitwise_equal(whole.last_checkpoint, resumed.last_checkpoint)


def test_the_checkpoint_of_a_custom_run_samples_evaluates_and_exports_by_script() -> None:
    checkpoint = trained_checkpoint(_mlp_and_its_copy(SETUPS["pack2-ema"], steps=2)[1])
    drawn = sample_for_spec(
        checkpoint,
        SampleSpec.model_validate(
            {"job_id": "j", "interpolation": {"from_seed": 1, "to_seed": 2, "steps": 4}}
        ),
        CPU,
    )
    assert drawn.gif is not None and drawn.latents.shape == (4, 4)
    metrics = evaluate_checkpoint(checkpoint, RecordingHooks(), CPU, None)
    assert metrics["mode_count"] == 8  # scored as ring8, with the custom critic rebuilt
    exported = export_generator(checkpoint, "c" * 32)
    card = json.loads(exported.card)
    assert card["family"] == card["network"] == "custom"
    assert card["model"]["generator"] == "mlp_copy.nets:Generator"
    assert card["torchscript"]["made_by"] == "script" and exported.torchscript is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, not gone
        module = torch.jit.load(io.BytesIO(exported.torchscript))
    generator, _ = load_generator(checkpoint, CPU)
    latents = torch.randn(5, 4)
    with torch.no_grad():
        assert torch.equal(module(latents), generator(latents))


# An image model of one's own: a linear map to pixels, and a linear critic over them.
IMAGE_NETS = """\
import math

import torch
from torch import nn


class Generator(nn.Module):
    def __init__(self, *, latent_dim, data_shape, branchy=False):
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.net = nn.Linear(latent_dim, math.prod(data_shape))
        self.branchy = branchy

    def forward(self, z, *unused):  # *unused: TorchScript cannot compile this signature
        images = torch.tanh(self.net(z)).reshape(-1, *self.data_shape)
        if self.branchy and z.shape[0] % 2 == 0:  # a trace keeps the branch of its batch
            return -images
        return images


class Discriminator(nn.Module):
    def __init__(self, *, input_shape):
        super().__init__()
        self.net = nn.Linear(math.prod(input_shape), 1)

    def forward(self, x):
        return self.net(x.flatten(1)).flatten(0)
"""


def _image_spec(tmp_path: Path, branchy: bool = False) -> TrainSpec:
    code = registered_bundle(
        tmp_path / "bundle", {"pixels/__init__.py": "", "pixels/nets.py": IMAGE_NETS}
    )
    images = np.random.default_rng(0).integers(0, 256, (8, 28, 28), dtype=np.uint8)
    path = write_npz(tmp_path / "digits.npz", images=images)
    spec = {
        "model": {
            "family": "custom",
            "code": code,
            "generator": "pixels.nets:Generator",
            "discriminator": "pixels.nets:Discriminator",
            "generator_args": {"branchy": branchy},
            "pack": 2,
        },
        "data": {"source": "npz", "path": str(path)},
        "latent": {"dim": 4},
        "loss": {"name": "hinge", "r1_gamma": 1.0},
        "train": {"steps": 3, "batch_size": 4, "seed": 1, "ema_decay": 0.9},
    }
    return resolve_data(TrainSpec.model_validate(spec), None)


def test_an_image_model_of_ones_own_trains_samples_inverts_and_exports_by_trace(
    tmp_path: Path,
) -> None:
    spec = _image_spec(tmp_path)
    assert spec.data.shape == (1, 28, 28)
    hooks = RecordingHooks()
    train(spec, hooks=hooks)
    grid = Image.open(io.BytesIO(hooks.samples[-1][1]))
    assert grid.mode == "L"  # an image grid: 64 grey cells
    checkpoint = hooks.last_checkpoint
    generator, _ = load_generator(checkpoint, CPU)
    with torch.no_grad():
        targets = generator(torch.randn(2, 4))
    found = invert(generator, spec.latent, targets, InversionSettings(steps=5, lr=0.05, seed=9))
    assert found.latents.shape == (2, 4) and (found.loss <= found.initial_loss).all()
    exported = export_generator(checkpoint, "d" * 32)
    card = json.loads(exported.card)
    assert card["torchscript"]["made_by"] == "trace" and card["output"]["kind"] == "images"


def test_a_generator_that_neither_scripts_nor_traces_exports_without_torchscript(
    tmp_path: Path,
) -> None:
    spec = _image_spec(tmp_path, branchy=True)
    checkpoint = trained_checkpoint(spec)
    exported = export_generator(checkpoint, "e" * 32)
    card = json.loads(exported.card)
    assert exported.torchscript is None and card["torchscript"] is None
    note = card["torchscript_note"]
    assert note.startswith("no TorchScript, as the generator neither scripts nor traces; script:")
    assert "trace: the module's outputs differ" in note and str(tmp_path) not in note
    assert exported.weights  # safetensors always


def test_the_example_plugin_trains_from_its_readmes_spec() -> None:
    readme = (EXAMPLE / "README.md").read_text()
    documented = json.loads(re.search(r"```json\n(.*?)```", readme, re.DOTALL).group(1))
    code = registered_bundle(EXAMPLE)
    documented["model"]["code"] = code
    documented["train"] = {**documented["train"], "steps": 6, "batch_size": 64}
    spec = TrainSpec.model_validate({**documented, "checkpoint_every": 3, "sample_every": 3})
    hooks = RecordingHooks()
    assert train(spec, hooks=hooks).step == 6
    assert hooks.evaluations and len(hooks.checkpoints) == 2
    card = json.loads(export_generator(hooks.last_checkpoint, "f" * 32).card)
    assert card["torchscript"]["made_by"] == "script"
