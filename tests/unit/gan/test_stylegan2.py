"""The stylegan2 family: shapes at every side, seeded noise, bit-exact resume with its lazy
regularisers and DiffAugment, W-space truncation, interpolation and inversion, and the spec's
errors. Tiny networks (width 4) on 16 random 32 px images: seconds in all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from gan_testing import (
    RecordingHooks,
    assert_bitwise_equal,
    run_two_ranks_with_resume,
    stop_then_resume,
)
from pydantic import ValidationError

from shared.jobs.sample_inputs import check_latent_space
from shared.specs import SampleSpec, SpecError, TrainSpec
from tests.data_builders import write_npz
from tests.helpers import MNIST_DIR
from worker.gan import evaluation, style_regularisers
from worker.gan import step as step_module
from worker.gan.augment import diff_augment
from worker.gan.checkpoint import load_checkpoint
from worker.gan.distributed import find_free_port
from worker.gan.errors import LatentsError
from worker.gan.inversion import InversionSettings, invert, render
from worker.gan.models import build_discriminator, build_generator
from worker.gan.sample import load_generator, sample_for_spec
from worker.gan.style_space import draw_truncated, from_w, mean_w, to_w
from worker.gan.stylegan import StyleGenerator, seeded_noise, style_discriminator
from worker.gan.train import train

WEIGHT_KEYS = ("generator", "discriminator", "g_optimizer", "d_optimizer", "generator_ema")


@pytest.fixture(scope="module", autouse=True)
def _short_final_evaluation() -> Iterator[None]:
    """A final evaluation of 256 samples, not 10,000: what it scores is the evaluation tests'
    concern, and drawing 10,000 images was most of each run's time here."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evaluation, "FINAL_SAMPLES", 256)
        yield


@pytest.fixture(scope="module")
def images_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 grey 32 px images (blobs of random brightness) and their labels, 0-3."""
    generator = np.random.default_rng(0)
    images = (generator.random((16, 32, 32)) ** 4 * 255).astype(np.uint8)
    labels = np.arange(16) % 4
    return write_npz(tmp_path_factory.mktemp("npz") / "blobs.npz", images=images, labels=labels)


def style_spec(data: Path, **overrides: Any) -> TrainSpec:
    """A width-4 stylegan2 on `data` (32 px grey), 12 steps of batch 4."""
    model = {"family": "stylegan2", "width": 4, "depth": 2, **overrides.pop("model", {})}
    spec: dict[str, Any] = {
        "model": model,
        "data": {"source": "npz", "path": str(data), "shape": [1, 32, 32]},
        "latent": {"dim": 8},
        "train": {"steps": 12, "batch_size": 4, "seed": 5, **overrides.pop("train", {})},
        "loss": overrides.pop("loss", {}),
        "checkpoint_every": 12,
        "sample_every": 12,
        **overrides,
    }
    return TrainSpec.model_validate(spec)


@pytest.fixture(scope="module")
def trained(images_npz: Path) -> dict[str, Any]:
    """The last checkpoint of a tiny run with an EMA (its w_avg has moved off zero)."""
    hooks = RecordingHooks()
    train(style_spec(images_npz, train={"ema_decay": 0.9}), hooks=hooks)
    return hooks.last_checkpoint


@pytest.mark.parametrize(("size", "channels"), [(32, 1), (32, 3), (64, 1), (64, 3)])
def test_stylegan2_follows_the_datas_image_shape(size: int, channels: int) -> None:
    data = {"source": "mnist", "path": str(MNIST_DIR), "resize": size, "channels": channels}
    spec = TrainSpec.model_validate({"model": {"family": "stylegan2", "width": 8}, "data": data})
    images = build_generator(spec)(torch.randn(2, spec.latent.dim))
    assert images.shape == (2, channels, size, size)
    assert build_discriminator(spec)(images).shape == (2,)


@pytest.mark.parametrize("side", [128, 256])
def test_the_networks_build_up_to_256_px(side: int) -> None:
    generator = StyleGenerator(8, 8, 1, 4, side, 3)
    images = generator(torch.randn(2, 8))
    assert images.shape == (2, 3, side, side)
    assert generator.num_ws == 3 * (side.bit_length() - 3) + 2  # 2 layers + toRGB a side
    assert style_discriminator(4, side, 3)(images).shape == (2,)


def test_a_fixed_z_draws_one_image_and_training_noise_follows_its_seed() -> None:
    generator = StyleGenerator(8, 8, 1, 4, 32, 1)
    z = torch.randn(3, 8)
    with torch.no_grad():
        generator.layers[1].noise_strength.fill_(1.0)
        generator.eval()
        assert torch.equal(generator(z), generator(z))
        generator.train()
        draws = []
        for seed in (1, 1, 2):
            with seeded_noise(generator, torch.Generator().manual_seed(seed)):
                draws.append(generator(z))
    assert torch.equal(draws[0], draws[1])
    assert not torch.equal(draws[0], draws[2])


def test_diff_augment_is_a_function_of_its_generator() -> None:
    images = torch.rand(4, 1, 32, 32)
    policies = ("color", "translation", "cutout")
    one = diff_augment(images, policies, torch.Generator().manual_seed(3))
    again = diff_augment(images, policies, torch.Generator().manual_seed(3))
    other = diff_augment(images, policies, torch.Generator().manual_seed(4))
    assert one.shape == images.shape
    assert torch.equal(one, again) and not torch.equal(one, other)
    assert (one == 0).flatten(1).float().mean(1).min() >= 0.2  # a cutout of at least 16x16


def test_tanh_squashes_the_image_and_keeps_the_checkpoint_layout() -> None:
    plain = StyleGenerator(8, 8, 1, 4, 32, 1).eval()
    squashed = StyleGenerator(8, 8, 1, 4, 32, 1, tanh=True).eval()
    squashed.load_state_dict(plain.state_dict())  # strict: the same parameters and buffers
    z = torch.randn(64, 8)
    with torch.no_grad():
        linear = plain(z)
        assert linear.abs().max() > 1
        assert torch.allclose(squashed(z), torch.tanh(linear))


@pytest.mark.slow  # trains for seconds: in `make test`, not `make test-fast`
@pytest.mark.parametrize("model", [{}, {"tanh": True}])
def test_a_stylegan2_run_with_lazy_r1_path_length_and_augment_resumes_bitwise(
    images_npz: Path, model: dict[str, Any]
) -> None:
    spec = style_spec(
        images_npz,
        model=model,
        loss={"r1_gamma": 0.1, "r1_every": 4, "pl_weight": 2.0, "pl_every": 2},
        train={"augment": ["color", "translation", "cutout"], "ema_decay": 0.9},
    )
    whole, resumed = stop_then_resume(spec)
    assert resumed.lines[0].startswith("resuming")
    assert_bitwise_equal(whole.last_checkpoint, resumed.last_checkpoint)
    assert whole.samples[-1] == resumed.samples[-1]
    generator = whole.last_checkpoint["generator"]
    assert generator["pl_mean"] > 0 and generator["w_avg"].abs().sum() > 0
    assert "Loss/G/reg" in whole.reports[-1].metrics
    other = RecordingHooks()
    train(style_spec(images_npz, train={"seed": 6}), hooks=other)
    assert not torch.equal(other.last_checkpoint["generator"]["const"], generator["const"])


def test_lazy_r1_and_path_length_run_on_their_intervals(
    images_npz: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r1_draws: list[int] = []
    penalty = step_module.real_gradient_penalty

    def counted(*args: Any, **kwargs: Any) -> torch.Tensor:
        r1_draws.append(len(r1_draws))
        return penalty(*args, **kwargs)

    pl_steps: list[int] = []
    core = style_regularisers.style_core
    monkeypatch.setattr(step_module, "real_gradient_penalty", counted)
    monkeypatch.setattr(style_regularisers, "style_core", lambda g: pl_steps.append(1) or core(g))
    loss = {"critic_steps": 2, "r1_every": 3, "pl_weight": 1.0}  # R1 by default: gamma auto
    train(style_spec(images_npz, loss=loss, train={"steps": 9}), hooks=RecordingHooks())
    assert len(r1_draws) == 18 // 3  # D steps 3, 6, ..., 18 of 2 x 9
    assert len(pl_steps) == 9 // 4  # G steps 4 and 8 (pl_every 4 by default)


def test_truncation_moves_stylegan2_images_towards_the_mean_w_image(
    trained: dict[str, Any],
) -> None:
    generator, spec = load_generator(trained, torch.device("cpu"))
    z = torch.randn(6, spec.latent.dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mean_image = from_w(generator, mean_w(generator)[None])
        distances = [
            (draw_truncated(generator, z, psi=psi) - mean_image).square().mean().item()
            for psi in (1.0, 0.5, 0.0)
        ]
        assert torch.allclose(generator(z, psi=0.5), from_w(generator, to_w(generator, z), 0.5))
    assert distances[0] > distances[1] > distances[2] < 1e-10
    sampled = sample_for_spec(
        trained, SampleSpec(job_id="j", seeds=[1, 2], truncation=0.5), torch.device("cpu")
    )
    plain = sample_for_spec(trained, SampleSpec(job_id="j", seeds=[1, 2]), torch.device("cpu"))
    assert np.array_equal(sampled.latents, plain.latents)  # z as drawn: ψ acts in W
    assert sampled.png != plain.png


def test_interpolation_in_w_walks_between_the_mapped_endpoints(trained: dict[str, Any]) -> None:
    interpolation = {"from_seed": 1, "to_seed": 2, "steps": 3, "space": "w"}
    spec = SampleSpec(job_id="j", interpolation=interpolation)
    result = sample_for_spec(trained, spec, torch.device("cpu"))
    generator, _ = load_generator(trained, torch.device("cpu"))
    z_path = sample_for_spec(trained, SampleSpec(job_id="j", seeds=[1, 2]), torch.device("cpu"))
    with torch.no_grad():
        ends = to_w(generator, torch.from_numpy(z_path.latents)).numpy()
    assert np.allclose(result.latents[[0, 2]], ends, atol=1e-6)
    assert np.allclose(result.latents[1], ends.mean(axis=0), atol=1e-5)
    assert result.gif is not None


def test_w_space_is_refused_for_other_families(trained: dict[str, Any]) -> None:
    dcgan = {"model": {"family": "dcgan"}, "data": {"source": "mnist"}}
    spec = SampleSpec(
        job_id="j", interpolation={"from_seed": 1, "to_seed": 2, "steps": 3, "space": "w"}
    )
    with pytest.raises(SpecError) as refused:
        check_latent_space(spec, dcgan)
    assert refused.value.problems[0]["path"] == "spec.interpolation.space"
    check_latent_space(spec, {"model": "stylegan2"})  # the family that has a W
    with pytest.raises(LatentsError, match="stylegan2"):
        to_w(torch.nn.Linear(8, 8), torch.randn(1, 8))


def test_inversion_into_w_finds_a_generated_image(trained: dict[str, Any]) -> None:
    generator, spec = load_generator(trained, torch.device("cpu"))
    with torch.no_grad():
        target_w = to_w(generator, torch.randn(2, spec.latent.dim))
        targets = from_w(generator, target_w)
    settings = InversionSettings(steps=40, lr=0.05, prior_weight=0.0, space="w")
    result = invert(generator, spec.latent, targets, settings)
    assert result.latents.shape == (2, spec.latent.dim)
    assert (result.loss < result.initial_loss / 4).all()
    with torch.no_grad():
        redrawn = render(generator, result.latents, settings)
    assert torch.allclose((redrawn - targets).square().mean(dim=(1, 2, 3)), result.loss.float())


def test_conditional_stylegan2_trains_with_a_projection_discriminator(images_npz: Path) -> None:
    hooks = RecordingHooks()
    spec = style_spec(images_npz, model={"conditional": True}, train={"steps": 2})
    train(spec, hooks=hooks)
    checkpoint = hooks.last_checkpoint
    assert checkpoint["generator"]["embed.weight"].shape[0] == 4
    assert "embed.weight" in checkpoint["discriminator"]
    generator, _ = load_generator(checkpoint, torch.device("cpu"))
    with torch.no_grad():
        sevens = generator(torch.randn(2, 8), torch.tensor([3, 3]), psi=0.7)
    assert sevens.shape == (2, 1, 32, 32)


def test_stylegan2_trains_in_bf16_on_the_cpu(images_npz: Path) -> None:
    spec = style_spec(
        images_npz,
        train={"steps": 2},
        loss={"pl_weight": 1.0, "pl_every": 1},
        precision="bf16",
        resources={"device_type": "cpu"},
    )
    hooks = RecordingHooks()
    train(spec, hooks=hooks)
    assert all(np.isfinite(v) for v in hooks.reports[-1].metrics.values())


@pytest.mark.processes  # starts processes: outside `make test-fast`
def test_two_ranks_train_stylegan2_and_resume_bitwise(images_npz: Path, tmp_path: Path) -> None:
    spec = style_spec(
        images_npz, loss={"r1_every": 2, "pl_weight": 1.0, "pl_every": 2},
        train={"augment": ["translation"], "ema_decay": 0.9},
    )  # fmt: skip
    port = find_free_port()
    mp.spawn(
        run_two_ranks_with_resume,
        args=(2, port, [spec.model_dump_json()], str(tmp_path), 1),
        nprocs=2,
    )
    whole = load_checkpoint((tmp_path / "0-whole.pt").read_bytes())
    resumed = load_checkpoint((tmp_path / "0-resumed.pt").read_bytes())
    for key in (*WEIGHT_KEYS, "rng_states"):
        assert_bitwise_equal(whole[key], resumed[key])


_MNIST = {"source": "mnist", "path": "/data"}


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"model": "stylegan2", "data": _MNIST}, "data.resize", "28 px"),
        (
            {"model": "stylegan2", "data": {**_MNIST, "resize": 32}, "loss": {"pl_every": 4}},
            "pl_every",
            "give pl_weight",
        ),
        ({"model": "dcgan", "data": _MNIST, "loss": {"pl_weight": 2.0}}, "loss.pl_weight", "dcgan"),
        ({"model": "dcgan", "data": _MNIST, "loss": {"r1_every": 4}}, "loss.r1_every", "r1_gamma"),
        (
            {"model": "mlp", "data": {"source": "toy:ring8"}, "train": {"augment": ["color"]}},
            "train.augment",
            "mlp",
        ),
        (
            {"model": "dcgan", "data": _MNIST, "train": {"augment": ["color", "color"]}},
            "augment",
            "at most once",
        ),
        ({"model": {"family": "dcgan", "depth": 2}, "data": _MNIST}, "depth", "stylegan2"),
        ({"model": {"family": "dcgan", "tanh": True}, "data": _MNIST}, "tanh", "stylegan2"),
        (
            {
                "model": "stylegan2",
                "data": {**_MNIST, "resize": 32},
                "loss": {"r1_gamma": 0.0, "r1_every": 8},
            },
            "loss.r1_every",
            "R1 is off",
        ),
    ],
)
def test_stylegan2_spec_errors_name_their_field(
    spec: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        TrainSpec.model_validate(spec)
    message = str(refused.value)
    assert field in message and words in message


def test_new_options_left_out_keep_older_specs_json() -> None:
    spec = TrainSpec.model_validate({"model": "dcgan", "data": _MNIST})
    dumped = spec.model_dump()
    style = TrainSpec.model_validate({"model": "stylegan2", "data": {**_MNIST, "resize": 32}})
    assert "tanh" not in style.model_dump()["model"]
    assert "augment" not in dumped["train"]
    assert not {"r1_every", "pl_weight", "pl_every"} & set(dumped["loss"])
    interpolation = {"from_seed": 1, "to_seed": 2, "steps": 3}
    assert (
        "space"
        not in SampleSpec(job_id="j", interpolation=interpolation).model_dump(mode="json")[
            "interpolation"
        ]
    )


def test_a_stylegan2_exports_a_torchscript_module_that_redraws_its_images(
    trained: dict[str, Any],
) -> None:
    import io
    import warnings

    from worker.gan.export import export_generator

    exported = export_generator(trained, "job")
    assert exported.torchscript is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, not gone
        module = torch.jit.load(io.BytesIO(exported.torchscript))
    generator, _ = load_generator(trained, torch.device("cpu"))
    z = torch.randn(5, 8)
    with torch.no_grad():
        assert torch.allclose(module(z), generator(z), atol=1e-5)
