"""`worker.runtime`: what a researcher's own training loop (a `script` job) calls.

A script job names a function in the researcher's code bundle (`"entrypoint":
"mygan.train:main"`); each rank of the job calls it once, as `main(args)` with the spec's
`args`, after torch.distributed is set up for the gang (gloo on CPUs, NCCL on GPUs). Inside:

    from worker import runtime

    def main(args):
        device = runtime.device()                  # this rank's device
        start = 0
        resumed = runtime.latest_checkpoint()      # after `lost` or `preempted`: go on from it
        if resumed is not None:
            start = resumed.step
            model.load_state_dict(resumed.state["model"])
        for step in range(start + 1, args["steps"] + 1):
            ...                                    # the loop: DDP, losses, optimisers
            runtime.report(step, {"Loss/G/loss": g_loss, "Loss/D/loss": d_loss})
            if step % 100 == 0:
                runtime.save_checkpoint(step, {"model": model.state_dict()})
                runtime.save_samples(step, generator(fixed_z))
            if runtime.should_stop():              # cancel or preemption: checkpoint, return
                runtime.save_checkpoint(step, {"model": model.state_dict()})
                return

Every rank may call every function; only rank 0's reports, logs, checkpoints and artifacts
are kept (the others' are dropped, as a built-in job's are). `should_stop` is collective:
every rank calls it at the same steps, and all get the same answer. Everything goes to the
node's agent (the job holds no credentials), as the built-in engine's reports do, so the
job's progress, curves, log, grids, `logs -f`, cancel, preemption and requeue work alike.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
import torch.distributed as dist

from shared import artifact_names
from worker.channel.link import AgentLink
from worker.channel.ticket import JobTicket
from worker.gan.hooks import ProgressReport
from worker.reporter import JobReporter

__all__ = [
    "Checkpoint",
    "device",
    "latest_checkpoint",
    "local_rank",
    "log",
    "rank",
    "report",
    "save_artifact",
    "save_checkpoint",
    "save_generator",
    "save_samples",
    "should_stop",
    "world_size",
]

# What a script checkpoint holds besides the loop's own state (its own layout, apart from
# the built-in engine's: a sampling job never mistakes one for the other).
SCRIPT_CHECKPOINT_FORMAT = "ganforge-script-1"
# Where save_artifact's files go among the job's artifacts, and their kind.
ARTIFACT_FOLDER = "files"
ARTIFACT_KIND = "output"


class Checkpoint(NamedTuple):
    """What `latest_checkpoint` returns: the step it was saved at and the state given."""

    step: int
    state: Any


class NotInAJobError(RuntimeError):
    """The runtime was called outside a script job's rank."""


@dataclass
class ScriptRun:
    link: AgentLink
    ticket: JobTicket
    reporter: JobReporter
    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    total_steps: int | None
    stopped: bool = False
    last_report: tuple[int, float] | None = None
    timing: dict[str, float] = field(default_factory=dict)


_run: ScriptRun | None = None


def start(run: ScriptRun) -> None:
    """Called by the rank before the entrypoint (worker/script_jobs.py)."""
    global _run
    _run = run


def _current() -> ScriptRun:
    if _run is None:
        raise NotInAJobError("worker.runtime is only available inside a ganforge script job")
    return _run


def rank() -> int:
    """This process's rank in the job (0 to world_size() - 1)."""
    return _current().rank


def local_rank() -> int:
    """This process's rank on its node (its device index there)."""
    return _current().local_rank


def world_size() -> int:
    return _current().world_size


def device() -> torch.device:
    """The device this rank runs on (`cuda:<local rank>` on a GPU node, else the CPU)."""
    return _current().device


def report(step: int, metrics: Mapping[str, float], images: int | None = None) -> None:
    """The job's progress at `step` and its metrics (means since the last report), as a
    built-in job reports them: progress and ETA (against the spec's `steps`), the curves,
    TensorBoard and metrics.jsonl. `images` (processed since the last report, all ranks)
    gives the images-per-second figure."""
    run = _current()
    now = time.monotonic()
    values = {str(name): float(value) for name, value in metrics.items()}
    per_second = 0.0
    if run.last_report is not None and step > run.last_report[0]:
        elapsed = now - run.last_report[1]
        values.setdefault("Timing/sec_per_step", elapsed / (step - run.last_report[0]))
        per_second = (images or 0) / elapsed if elapsed > 0 else 0.0
    run.last_report = (step, now)
    total = max(step, run.total_steps or step)
    run.reporter.report_progress(ProgressReport(step, total, per_second, values))


def log(*parts: object) -> None:
    """A line of the job's log (`ganforge logs -f`, the dashboard)."""
    _current().reporter.log(" ".join(str(part) for part in parts))


def save_checkpoint(step: int, state: Any) -> None:
    """Keep `state` (tensors, dicts, lists, numbers, strings: what `torch.load` reads with
    `weights_only=True`) as the job's checkpoint at `step`; a requeued or preempted job's next
    attempt gets the latest one from `latest_checkpoint()`."""
    run = _current()
    buffer = io.BytesIO()
    torch.save({"format": SCRIPT_CHECKPOINT_FORMAT, "step": step, "state": state}, buffer)
    run.reporter.save_checkpoint(step, buffer.getvalue())


def latest_checkpoint() -> Checkpoint | None:
    """The job's latest checkpoint (from an earlier attempt), or None on a fresh start."""
    run = _current()
    reply, data = run.link.call("checkpoint", job_id=run.ticket.job_id, step=None)
    if not reply["found"]:
        return None
    saved = torch.load(io.BytesIO(data), map_location=run.device, weights_only=True)
    if not isinstance(saved, dict) or saved.get("format") != SCRIPT_CHECKPOINT_FORMAT:
        raise ValueError("the job's latest checkpoint was not saved by worker.runtime")
    return Checkpoint(int(saved["step"]), saved["state"])


def should_stop() -> bool:
    """Whether the job was asked to stop (cancel, preemption): checkpoint and return. Every
    rank must call it at the same steps: the ranks agree, so all stop at the same one."""
    run = _current()
    asked = run.reporter.should_stop()
    if run.world_size > 1 and dist.is_initialized():
        flag = torch.tensor([1.0 if asked else 0.0], device=_collective_device(run))
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        asked = bool(flag.item())
    run.stopped = run.stopped or asked
    return asked


def save_artifact(name: str, data: bytes | str) -> None:
    """A file of the job's own, kept as its artifact `files/<name>` (lowercase letters,
    digits, `.`, `_`, `-`)."""
    full = f"{ARTIFACT_FOLDER}/{name}"
    if not artifact_names.is_artifact_name(full):
        raise ValueError(f"{name!r}: an artifact name is lowercase letters, digits, . _ -")
    payload = data.encode() if isinstance(data, str) else bytes(data)
    run = _current()
    if run.reporter.writes:
        run.link.call("put", payload, name=full, kind=ARTIFACT_KIND, step=None)


def save_samples(step: int, samples: torch.Tensor) -> None:
    """What the generator makes at `step`, as the job's sample grid: images [N, C, H, W] in
    [-1, 1], or points [N, 2] (or [N, 1]) drawn as a scatter."""
    from worker.gan.grids import image_grid_png
    from worker.gan.point_pictures import scatter_png

    run = _current()
    if not run.reporter.writes:
        return
    drawn = samples.detach().float().cpu()
    png = image_grid_png(drawn) if drawn.dim() == 4 else scatter_png(drawn)
    run.reporter.save_samples(step, png)


def save_generator(
    step: int,
    module: torch.nn.Module,
    latent: Mapping[str, Any],
    data: Mapping[str, Any],
    args: Mapping[str, Any] | None = None,
) -> None:
    """Keep the generator at `step` so that sampling jobs work on it as on a built-in job's:
    seeds, interpolation, truncation, explicit latents, neighbourhoods, arithmetic, inversion
    and export. Its class must be one of the bundle's, built as the plugin contract says
    (worker/gan/plugins.py: `Generator(latent_dim=, data_shape=, **args)`), so a sampling job
    can rebuild it; `latent` is the prior (`{"dim": 8, "prior": "gaussian"}`) and `data` what
    it makes, as a training spec's `data` says it (`{"source": "toy:ring8"}`, or a source with
    its `shape`)."""
    from shared.specs import TrainSpec
    from worker.gan.checkpoint import CHECKPOINT_FORMAT_VERSION, unwrap
    from worker.gan.plugins import namespace

    run = _current()
    network = unwrap(module)
    code = run.ticket.spec["code"]
    package = namespace(code) + "."
    cls = type(network)
    if not cls.__module__.startswith(package):
        raise ValueError(f"save_generator: {cls.__qualname__} is not a class of your bundle")
    target = f"{cls.__module__.removeprefix(package)}:{cls.__qualname__}"
    spec = TrainSpec.model_validate(
        {
            "model": {
                "family": "custom",
                "code": code,
                "generator": target,
                # Never built from a saved generator: sampling rebuilds the generator alone.
                "discriminator": target,
                "generator_args": dict(args or {}),
            },
            "latent": dict(latent),
            "data": dict(data),
        }
    )
    if not run.reporter.writes:
        return
    weights = {name: tensor.detach().cpu() for name, tensor in network.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(
        {
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "step": step,
            "spec_json": spec.model_dump_json(),
            "latent": {"dim": spec.latent.dim, "prior": spec.latent.prior},
            "generator": weights,
        },
        buffer,
    )
    names = artifact_names
    run.link.call("put", spec.model_dump_json().encode(), name=names.GENERATOR_SPEC_NAME,
                  kind="generator-spec", step=None)  # fmt: skip
    run.link.call(
        "put", buffer.getvalue(), name=names.saved_generator_name(step), kind="generator",
        step=step,
    )  # fmt: skip


def _collective_device(run: ScriptRun) -> torch.device:
    return run.device if run.device.type == "cuda" else torch.device("cpu")
