"""Model plugins: the networks of a `"model": {"family": "custom"}` spec come from the user's
code bundle, and train with everything the built-in families get (every loss, PacGAN, EMA,
R1, mixed precision, bitwise resume, sampling, inversion, export).

The contract a bundle's classes follow (keyword arguments, so the names matter)::

    Generator(*, latent_dim: int, data_shape: tuple[int, ...], **generator_args)
        forward(z: [B, latent_dim]) -> [B, *data_shape]

    Discriminator(*, input_shape: tuple[int, ...], **discriminator_args)
        forward(x: [B, *input_shape]) -> [B], one score per input (a logit, or a critic's
        score for hinge and wgan_gp)

`data_shape` is one sample's shape: `(d,)` for points, `(channels, size, size)` for images
(values in [-1, 1]; end the generator with a tanh). `input_shape` is `data_shape` with its
first axis multiplied by `pack`: under PacGAN (`model.pack` > 1) ganforge hands the
discriminator `pack` samples concatenated along the features (points) or channels (images),
as it does for the built-in networks, so a class need not know about packing. Both classes
are `torch.nn.Module` subclasses, built from the job seed's random state (so the same spec
gives the same weights), and should avoid randomness in `forward` that does not come from
torch's generators (resume is bitwise only for what torch draws).

Bundles: `register_bundle(code_id, folder)` says where a bundle's files are (the node cache's
unpacked folder); the rank registers the spec's bundle before building networks, and so must
anything that rebuilds them from a checkpoint (sampling, inversion, export, evaluation).
Each bundle is imported as its own package, `ganforge_bundle_<code id>`, whose path is the
folder, so `mygan.nets:Generator` is `ganforge_bundle_<id>.mygan.nets.Generator`: two
bundles that both have a top-level `mygan` live side by side in one process (the warm
sampler), and a spec cannot reach a module outside its bundle. The price: a bundle imports
its own modules relatively (`from .layers import Block`); an absolute `import mygan` fails
with a message that says so.

Everything is checked when the networks are built, failing the job at once with a
`BundleError` naming the spec field and the bundle's file and line (never a path of the
server's): the module does not import, the class is missing or not an `nn.Module`, the
constructor raises, or a forward pass over a batch of `CHECK_BATCH` does not give the shapes
above. The check runs in eval mode, without gradients and with torch's random state put
back, so it changes neither the weights nor the run's random streams.
"""

from __future__ import annotations

import importlib
import sys
import threading
import traceback
from importlib.machinery import ModuleSpec
from importlib.util import module_from_spec
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from shared.specs import TrainSpec
from shared.specs.custom_model import check_code_id
from worker.gan.data import known_shape
from worker.gan.errors import BundleError

# The package each bundle is imported as: this, then the bundle's id.
NAMESPACE_PREFIX = "ganforge_bundle_"
# Samples in the build-time forward passes: more than one, so a class that mixes the batch
# up (or drops the batch axis) shows it.
CHECK_BATCH = 4
# A user's exception message is quoted up to this many characters.
MAX_DETAIL = 500
GENERATOR_FIELD = "spec.model.generator"
DISCRIMINATOR_FIELD = "spec.model.discriminator"

_folders: dict[str, Path] = {}
_lock = threading.Lock()


def register_bundle(code_id: str, folder: Path) -> None:
    """Make bundle `code_id` importable from `folder` (its unpacked files) in this process.

    Registering the same bundle again from another folder (the cache unpacked it anew)
    forgets the modules imported from the old one, so file and line numbers stay true.
    """
    try:
        check_code_id(code_id)
    except ValueError as exc:
        raise BundleError(f"spec.model.code: {exc}") from None
    folder = folder.resolve()
    if not folder.is_dir():
        raise BundleError(f"spec.model.code: bundle {code_id} has no folder on this node")
    with _lock:
        if _folders.get(code_id) == folder:
            return
        _forget_modules(code_id)
        _folders[code_id] = folder
        package = module_from_spec(ModuleSpec(namespace(code_id), None, is_package=True))
        package.__path__ = [str(folder)]
        sys.modules[package.__name__] = package
    importlib.invalidate_caches()


def forget_bundle(code_id: str) -> None:
    """Drop a bundle and every module imported from it (its folder is going away)."""
    with _lock:
        _folders.pop(code_id, None)
        _forget_modules(code_id)


def namespace(code_id: str) -> str:
    """The package bundle `code_id` is imported as."""
    return f"{NAMESPACE_PREFIX}{code_id}"


def load_attribute(code_id: str, target: str, field: str, what: str) -> Any:
    """What `target` ("module.path:name") names in a registered bundle (`what`: a class, a
    training loop's function); BundleError naming `field` when it cannot be had."""
    folder = _folders.get(code_id)
    if folder is None:
        raise BundleError(
            f"spec.model.code: bundle {code_id} is not registered in this worker "
            "(register_bundle before building its networks)"
        )
    module_path, name = target.split(":")
    qualified = f"{namespace(code_id)}.{module_path}"
    try:
        module = importlib.import_module(qualified)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (qualified + ".").startswith(exc.name + "."):
            raise BundleError(f"{field}: the bundle has no module {module_path}") from None
        raise _blamed(exc, field, code_id, folder) from None
    except (Exception, SystemExit) as exc:  # the user's code: any failure is theirs to fix
        raise _blamed(exc, field, code_id, folder) from None
    found = getattr(module, name, None)
    if found is None:
        where = _relative(getattr(module, "__file__", None) or module_path, folder)
        raise BundleError(f"{field}: {where} has no {what} {name}")
    return found


def load_class(code_id: str, target: str, field: str) -> type[nn.Module]:
    """The `nn.Module` subclass `target` ("module.path:ClassName") of a registered bundle;
    BundleError naming `field` when it cannot be had."""
    found = load_attribute(code_id, target, field, "class")
    if not (isinstance(found, type) and issubclass(found, nn.Module)):
        raise BundleError(f"{field}: {target} is not a torch.nn.Module subclass")
    return found


def build_custom_generator(spec: TrainSpec) -> nn.Module:
    """The spec's generator class, built and checked against the data's shape."""
    model, field = spec.model, GENERATOR_FIELD
    assert model.code is not None and model.generator is not None  # the spec's validator
    data_shape = known_shape(spec.data)
    network = _construct(
        model.code,
        model.generator,
        field,
        latent_dim=spec.latent.dim,
        data_shape=data_shape,
        **(model.generator_args or {}),
    )
    output = _probe(network, torch.zeros(CHECK_BATCH, spec.latent.dim), field, model.code)
    needed = (CHECK_BATCH, *data_shape)
    if tuple(output.shape) != needed:
        raise BundleError(
            f"{field}: output shape {tuple(output.shape)} for a batch of {CHECK_BATCH}, "
            f"the data needs {needed}"
        )
    return network


def build_custom_discriminator(spec: TrainSpec) -> nn.Module:
    """The spec's discriminator class, built for inputs of `pack` samples and checked to give
    one score per input. `models.build_discriminator` wraps it for packing, as the built-ins."""
    model, field = spec.model, DISCRIMINATOR_FIELD
    assert model.code is not None and model.discriminator is not None  # the spec's validator
    data_shape = known_shape(spec.data)
    input_shape = (data_shape[0] * model.pack, *data_shape[1:])
    network = _construct(
        model.code,
        model.discriminator,
        field,
        input_shape=input_shape,
        **(model.discriminator_args or {}),
    )
    output = _probe(network, torch.zeros(CHECK_BATCH, *input_shape), field, model.code)
    if tuple(output.shape) != (CHECK_BATCH,):
        packs = f" (each a pack of {model.pack} samples)" if model.pack > 1 else ""
        hint = "; flatten it, e.g. .flatten(0)" if output.numel() == CHECK_BATCH else ""
        raise BundleError(
            f"{field}: output shape {tuple(output.shape)} for a batch of {CHECK_BATCH} "
            f"inputs{packs}, needs ({CHECK_BATCH},): one score per input{hint}"
        )
    return network


def _construct(code_id: str, target: str, field: str, **arguments: Any) -> nn.Module:
    cls = load_class(code_id, target, field)
    try:
        return cls(**arguments)
    except (Exception, SystemExit) as exc:
        raise _blamed(exc, field, code_id, _folders[code_id]) from None


def _probe(network: nn.Module, inputs: Tensor, field: str, code_id: str) -> Tensor:
    """`network(inputs)` in eval mode, without gradients, leaving torch's CPU random state
    as it found it (the network's mode too)."""
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            output = network(inputs)
    except (Exception, SystemExit) as exc:
        raise _blamed(exc, field, code_id, _folders[code_id]) from None
    finally:
        network.train(was_training)
    if not isinstance(output, Tensor) or not output.is_floating_point():
        what = f"a {output.dtype} tensor" if isinstance(output, Tensor) else type(output).__name__
        raise BundleError(f"{field}: forward returned {what}, not a floating-point tensor")
    return output


def _blamed(exc: BaseException, field: str, code_id: str, folder: Path) -> BundleError:
    return BundleError(f"{field}: {_described(exc, code_id, folder)}")


def describe_error(exc: BaseException, code_id: str) -> str:
    """An exception of bundle `code_id`'s code as a user reads it: the bundle's file and line
    it came from (the innermost frame inside the bundle), its type and message, with no path
    of the server's (e.g. for a model card that says why a generator did not script)."""
    folder = _folders.get(code_id)
    if folder is None:
        return type(exc).__name__
    return _described(exc, code_id, folder)


def _described(exc: BaseException, code_id: str, folder: Path) -> str:
    if isinstance(exc, SyntaxError) and exc.filename and _inside(exc.filename, folder):
        where = f"{_relative(exc.filename, folder)} line {exc.lineno}"
        return f"{where}: {type(exc).__name__}: {_scrub(str(exc.msg), code_id, folder)}"
    detail = f"{type(exc).__name__}: {_scrub(str(exc), code_id, folder)}"
    if isinstance(exc, ModuleNotFoundError) and _is_own_top_level(exc.name, folder):
        detail += " (a bundle imports its own modules relatively: from .module import name)"
    trace = traceback.extract_tb(exc.__traceback__)
    frames = [frame for frame in trace if _inside(frame.filename, folder)]
    if frames:
        detail = f"{_relative(frames[-1].filename, folder)} line {frames[-1].lineno}: {detail}"
    return detail


def _scrub(text: str, code_id: str, folder: Path) -> str:
    """A user's exception message without the bundle's folder or package prefix, bounded."""
    text = text.replace(f"{folder}/", "").replace(f"{namespace(code_id)}.", "")
    return text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL] + "..."


def _inside(filename: str, folder: Path) -> bool:
    try:
        return Path(filename).resolve().is_relative_to(folder)
    except (OSError, ValueError):
        return False


def _relative(filename: str, folder: Path) -> str:
    path = Path(filename)
    return path.resolve().relative_to(folder).as_posix() if _inside(filename, folder) else path.name


def _is_own_top_level(name: str | None, folder: Path) -> bool:
    """Whether an absolute import of `name` meant one of the bundle's own modules."""
    if not name:
        return False
    top = name.split(".")[0]
    return (folder / top).is_dir() or (folder / f"{top}.py").is_file()


def _forget_modules(code_id: str) -> None:
    """Remove the bundle's package and its modules from sys.modules (caller holds the lock)."""
    prefix = namespace(code_id)
    for name in [name for name in sys.modules if name == prefix or name.startswith(prefix + ".")]:
        del sys.modules[name]
