"""Building a custom model's networks from a code bundle (worker/gan/plugins.py): a bundle
that is wrong fails at once, naming the spec field and the bundle's own file and line (never
a path of the server's); bundles are imported apart, so two may share a package name."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
from gan_testing import RecordingHooks, custom_ring_spec, registered_bundle

from worker.gan.errors import BundleError
from worker.gan.models import build_discriminator, build_generator
from worker.gan.plugins import forget_bundle, register_bundle
from worker.gan.train import train

# A bundle that builds: the cases below spoil one thing of it at a time.
NETS = """\
from torch import nn


class Generator(nn.Module):
    def __init__(self, *, latent_dim, data_shape, shift=0):
        super().__init__()
        self.net = nn.Linear(latent_dim, data_shape[0] + shift)

    def forward(self, z):
        return self.net(z)


class Discriminator(nn.Module):
    def __init__(self, *, input_shape, keep_dim=False):
        super().__init__()
        self.net = nn.Linear(input_shape[0], 1)
        self.keep_dim = keep_dim

    def forward(self, x):
        return self.net(x) if self.keep_dim else self.net(x).flatten(0)
"""
GOOD = {"mygan/__init__.py": "", "mygan/nets.py": NETS}


def _refusal(
    tmp_path: Path, files: dict[str, str], network: str = "generator", **model: object
) -> str:
    # A folder per content, as a bundle's id is its content's hash: a module imported once
    # is not imported again.
    folder = tmp_path / hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()[:12]
    code = registered_bundle(folder, {**GOOD, **files})
    spec = custom_ring_spec(code, "mygan.nets", model=model)
    build = build_generator if network == "generator" else build_discriminator
    with pytest.raises(BundleError) as refused:
        build(spec)
    message = str(refused.value)
    assert str(tmp_path) not in message and "ganforge_bundle_" not in message
    return message


def test_a_good_bundle_builds_both_networks_packed_as_the_built_ins(tmp_path: Path) -> None:
    code = registered_bundle(tmp_path / "bundle", GOOD)
    spec = custom_ring_spec(code, "mygan.nets", model={"pack": 2})
    assert build_generator(spec).net.out_features == 2
    packed = build_discriminator(spec)
    assert packed.pack == 2 and packed.network.net.in_features == 4  # two points side by side


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    message = _refusal(tmp_path, {"mygan/nets.py": "from torch import nn\n\nclass G(nn.Module:\n"})
    assert message.startswith("spec.model.generator: mygan/nets.py line 3: SyntaxError: ")


def test_an_error_while_importing_names_the_innermost_file_of_the_bundle(tmp_path: Path) -> None:
    files = {
        "mygan/nets.py": "from .layers import Block\n" + NETS,
        "mygan/layers.py": "import torch\n\nBlock = nn2.Linear\n",
    }
    message = _refusal(tmp_path, files)
    assert message == (
        "spec.model.generator: mygan/layers.py line 3: NameError: name 'nn2' is not defined"
    )


def test_an_absolute_import_of_the_bundles_own_package_says_to_import_relatively(
    tmp_path: Path,
) -> None:
    message = _refusal(tmp_path, {"mygan/nets.py": "from mygan.layers import Block\n"})
    assert message.startswith("spec.model.generator: mygan/nets.py line 1: ModuleNotFoundError")
    assert "imports its own modules relatively" in message


def test_a_missing_module_or_class_or_a_class_that_is_no_module_is_named(tmp_path: Path) -> None:
    no_module = _refusal(tmp_path, {}, generator="mygan.network:Generator")
    assert no_module == "spec.model.generator: the bundle has no module mygan.network"
    no_class = _refusal(tmp_path, {}, network="discriminator", discriminator="mygan.nets:Critic")
    assert no_class == "spec.model.discriminator: mygan/nets.py has no class Critic"
    not_a_module = _refusal(
        tmp_path, {"mygan/nets.py": NETS + "\nLATENT = 3\n"}, generator="mygan.nets:LATENT"
    )
    assert (
        not_a_module == "spec.model.generator: mygan.nets:LATENT is not a torch.nn.Module subclass"
    )


def test_a_constructor_that_raises_is_named_by_its_line(tmp_path: Path) -> None:
    broken = NETS.replace("self.net = nn.Linear(latent_dim", "self.net = nn.Lineer(latent_dim")
    message = _refusal(tmp_path, {"mygan/nets.py": broken})
    assert message == (
        "spec.model.generator: mygan/nets.py line 7: AttributeError: "
        "module 'torch.nn' has no attribute 'Lineer'"
    )
    unknown = _refusal(tmp_path, {}, generator_args={"widht": 3})
    assert "TypeError" in unknown and "'widht'" in unknown


def test_outputs_of_the_wrong_shape_are_refused_with_the_shapes(tmp_path: Path) -> None:
    wide = _refusal(tmp_path, {}, generator_args={"shift": 1})
    assert (
        wide == "spec.model.generator: output shape (4, 3) for a batch of 4, the data needs (4, 2)"
    )
    column = _refusal(tmp_path, {}, network="discriminator", discriminator_args={"keep_dim": True})
    assert column == (
        "spec.model.discriminator: output shape (4, 1) for a batch of 4 inputs, needs (4,): "
        "one score per input; flatten it, e.g. .flatten(0)"
    )


def test_a_forward_pass_that_fails_is_named_by_its_line(tmp_path: Path) -> None:
    broken = NETS.replace("return self.net(z)", "return self.net(z[:, :1])")
    message = _refusal(tmp_path, {"mygan/nets.py": broken})
    assert message.startswith("spec.model.generator: mygan/nets.py line 10: RuntimeError: ")


def test_a_broken_bundle_fails_the_run_before_its_first_step(tmp_path: Path) -> None:
    code = registered_bundle(tmp_path / "bundle", GOOD)
    spec = custom_ring_spec(code, "mygan.nets", model={"generator_args": {"shift": -1}})
    hooks = RecordingHooks()
    with pytest.raises(BundleError, match=r"output shape \(4, 1\)"):
        train(spec, hooks=hooks)
    assert not hooks.reports and not hooks.checkpoints


def test_a_bundle_that_is_not_registered_is_refused() -> None:
    code = hashlib.sha256(b"never uploaded").hexdigest()
    with pytest.raises(BundleError, match=f"bundle {code} is not registered"):
        build_generator(custom_ring_spec(code, "mygan.nets"))
    with pytest.raises(BundleError, match=r"spec\.model\.code: must be a code bundle's id"):
        register_bundle("not-an-id", Path("."))


def test_two_bundles_with_the_same_package_name_build_their_own_classes(tmp_path: Path) -> None:
    first = registered_bundle(tmp_path / "first", GOOD)
    second = registered_bundle(tmp_path / "second", {**GOOD, "mygan/nets.py": NETS + "\nWHO = 2\n"})
    built = [
        build_generator(custom_ring_spec(code, "mygan.nets")) for code in (first, second, first)
    ]
    modules = [type(network).__module__ for network in built]
    assert modules[0] == modules[2] != modules[1]
    assert not hasattr(sys.modules[modules[0]], "WHO") and sys.modules[modules[1]].WHO == 2


def test_a_bundle_registered_again_from_a_new_folder_is_imported_from_there(
    tmp_path: Path,
) -> None:
    code = registered_bundle(tmp_path / "old", GOOD)
    old = type(build_generator(custom_ring_spec(code, "mygan.nets")))
    registered_bundle(tmp_path / "new", {**GOOD, "mygan/nets.py": NETS + "\nWHO = 'new'\n"})
    register_bundle(code, tmp_path / "new")  # the node cache unpacked it again elsewhere
    new = type(build_generator(custom_ring_spec(code, "mygan.nets")))
    assert new is not old and sys.modules[new.__module__].WHO == "new"
    forget_bundle(code)
    with pytest.raises(BundleError, match="not registered"):
        build_generator(custom_ring_spec(code, "mygan.nets"))
