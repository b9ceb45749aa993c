"""What a rank needs before the engine runs, asked of its agent: its data on local disk, the
checkpoint to resume or sample from, and the `.npy` latents a sampling job names."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Protocol

import torch

from shared.datafiles.confine import reading_within
from shared.specs.data import DataSpec
from shared.specs.latent_checks import MAX_LATENTS_NPY_BYTES
from shared.specs.sample import LatentsArtifact
from worker.channel.link import AgentLink, JobInputError
from worker.gan.checkpoint import load_checkpoint, sampling_part

__all__ = [
    "JobInputError",
    "confined_reads",
    "job_data",
    "load_checkpoint_of",
    "load_latents_artifact",
]


class CheckpointCache(Protocol):
    def get_or_load(self, key: Any, load: Any) -> Any: ...


# Set by the warm sampler (worker/warm/) around each job it runs: checkpoints come from its
# cache of loaded ones, keyed by job, digest and device. Unset: loaded each time.
checkpoint_cache: ContextVar[CheckpointCache | None] = ContextVar("checkpoint_cache", default=None)


@contextmanager
def job_data(
    data: DataSpec, link: AgentLink, data_roots: Sequence[Path] = ()
) -> Iterator[Path | None]:
    """The folder of the job's data as its agent provides it, with every read inside the
    block confined: a spec's data.path to the data roots, each file and folder under it
    checked where it lies once opened (a member that is a link out of the roots fails the
    job, naming spec.data.path and the member). Fetched copies lie in the attempt's inputs
    folder, which the agent wrote and the job cannot change."""
    reply, _ = link.call("data", data=data.model_dump(mode="json"))
    path = None if reply["path"] is None else Path(reply["path"])
    with confined_reads(data, path, data_roots) as confined:
        yield confined


@contextmanager
def confined_reads(
    data: DataSpec, path: Path | None, data_roots: Sequence[Path]
) -> Iterator[Path | None]:
    """`path`, with reads inside the block confined to the data roots when it is a spec's
    data.path (a worker's own folder: anything could lie there)."""
    if data.path is None:
        yield path
        return
    with reading_within(data_roots, "spec.data.path"):
        yield path


def load_checkpoint_of(
    link: AgentLink, job_id: str, step: int | None, device: torch.device
) -> dict | None:
    """The job's checkpoint at `step` (latest when None), loaded with weights_only=True; from
    a warm sampler's cache (its sampling part only) when one is installed."""
    cache = checkpoint_cache.get()
    if cache is None:
        reply, data = link.call("checkpoint", job_id=job_id, step=step)
        return load_checkpoint(data, map_location=device) if reply["found"] else None
    info, _ = link.call("checkpoint_info", job_id=job_id, step=step)
    if not info["found"]:
        return None

    def fetch() -> dict:
        _, data = link.call("checkpoint", job_id=job_id, step=info["step"])
        return sampling_part(load_checkpoint(data, map_location=device))

    loaded: dict = cache.get_or_load((job_id, info["step"], info["sha256"], str(device)), fetch)
    return loaded


def load_latents_artifact(link: AgentLink, artifact: LatentsArtifact) -> bytes:
    """The bytes of the `.npy` artifact the sampling job names; the agent checks again that
    it is one of its owner's (the API checked at submission; the worker trusts no spec)."""
    found: dict[str, Any] = {
        "job_id": artifact.job_id,
        "name": artifact.name,
        "field": "spec.latents",
    }
    info, _ = link.call("artifact_info", **found)
    if info["size"] > MAX_LATENTS_NPY_BYTES:
        raise JobInputError(
            f"spec.latents.name: {artifact.name} is {info['size']:,} bytes, more than any "
            "valid latents array"
        )
    return link.call("artifact", **found)[1]
