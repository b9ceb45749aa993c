"""What a rank needs before the engine runs: the job row, its data on local disk, the
checkpoint to resume or sample from, and the `.npy` latents a sampling job names."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Protocol

import torch
from sqlalchemy import select

from shared.config import Settings
from shared.datafiles.confine import reading_within
from shared.datafiles.roots import DataPathRefusedError, check_data_path
from shared.db import session_scope
from shared.jobs.reports import latest_checkpoint
from shared.models import Artifact, Job
from shared.specs.data import DataSpec
from shared.specs.latent_checks import MAX_LATENTS_NPY_BYTES
from shared.specs.sample import LatentsArtifact
from shared.storage import Storage, keys
from worker.gan.checkpoint import load_checkpoint


class CheckpointCache(Protocol):
    def get_or_load(self, key: Any, load: Any) -> Any: ...


# Set by the warm sampler (worker/warm/) around each job it runs: checkpoints come from its
# cache of loaded ones, keyed by stored object, content and device. Unset: loaded each time.
checkpoint_cache: ContextVar[CheckpointCache | None] = ContextVar("checkpoint_cache", default=None)


class JobInputError(RuntimeError):
    """Something the job refers to is missing or unusable; the message says what."""


def load_job(settings: Settings, job_id: str) -> tuple[str, dict]:
    with session_scope(settings.database_url) as session:
        kind, spec = session.execute(select(Job.kind, Job.spec).where(Job.id == job_id)).one()
    return kind, spec


@contextmanager
def job_data(
    data: DataSpec, store: Storage, workdir: Path, data_roots: Sequence[Path] = ()
) -> Iterator[Path | None]:
    """`fetch_data`'s folder, with every read inside the block confined: a spec's data.path
    to the data roots, each file and folder under it checked where it lies once opened (a
    member that is a link out of the roots fails the job, naming spec.data.path and the
    member). Fetched copies are the worker's own files and need no roots."""
    path = fetch_data(data, store, workdir, data_roots)
    if data.path is None:
        yield path
        return
    with reading_within(data_roots, "spec.data.path"):
        yield path


def fetch_data(
    data: DataSpec, store: Storage, workdir: Path, data_roots: Sequence[Path] = ()
) -> Path | None:
    """A local folder holding the data files: the spec's path (checked against the data
    roots again here, on the disk that counts), or a copy of the store prefix."""
    if data.path is not None:
        try:
            path = check_data_path(data.path, data_roots)
        except DataPathRefusedError as refused:
            raise JobInputError(f"spec.data.path: {refused}") from None
        if not path.exists():
            raise JobInputError(f"spec.data.path: {data.path} does not exist on this worker")
        return path
    if data.dataset_id is not None:
        return _fetch_dataset(data.dataset_id, store, workdir)
    if data.key is None:
        return None
    prefix = data.key.rstrip("/") + "/"
    objects = store.list(prefix) or store.list(data.key)
    if not objects:
        raise JobInputError(f"spec.data.key: nothing stored under {data.key!r}")
    folder = workdir / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for obj in objects:
        (folder / obj.key.rsplit("/", 1)[-1]).write_bytes(store.get(obj.key))
    return folder


def _fetch_dataset(dataset_id: str, store: Storage, workdir: Path) -> Path:
    """An upload's file, streamed to `<workdir>/data/` (uploads may be gigabytes)."""
    objects = store.list(keys.dataset_prefix(dataset_id))
    if not objects:
        raise JobInputError(f"spec.data.dataset_id: dataset {dataset_id} is no longer stored")
    folder = workdir / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for obj in objects:
        with (folder / obj.key.rsplit("/", 1)[-1]).open("wb") as file:
            for chunk in store.open(obj.key):
                file.write(chunk)
    return folder


def load_checkpoint_of(
    settings: Settings, store: Storage, job_id: str, step: int | None, device: torch.device
) -> dict | None:
    """The job's checkpoint at `step` (latest when None), loaded with weights_only=True."""
    with session_scope(settings.database_url) as session:
        row = latest_checkpoint(session, job_id, step)
    if row is None:
        return None
    cache = checkpoint_cache.get()
    if cache is None:
        return load_checkpoint(store.get(row.key), map_location=device)
    key = (row.key, row.sha256, str(device))
    loaded: dict = cache.get_or_load(
        key, lambda: load_checkpoint(store.get(row.key), map_location=device)
    )
    return loaded


def load_latents_artifact(
    settings: Settings, store: Storage, job_id: str, artifact: LatentsArtifact
) -> bytes:
    """The bytes of the `.npy` artifact sampling job `job_id` names, checked again here to be
    one of its owner's (the API checked at submission; the worker trusts no spec alone)."""
    with session_scope(settings.database_url) as session:
        owners = dict(
            session.execute(
                select(Job.id, Job.owner_id).where(Job.id.in_([job_id, artifact.job_id]))
            ).all()
        )
        row = session.scalar(
            select(Artifact).where(
                Artifact.job_id == artifact.job_id, Artifact.name == artifact.name
            )
        )
    if artifact.job_id not in owners or owners[artifact.job_id] != owners.get(job_id):
        raise JobInputError(f"spec.latents.job_id: no job {artifact.job_id!r} among your jobs")
    if row is None:
        raise JobInputError(
            f"spec.latents.name: job {artifact.job_id} has no artifact {artifact.name!r}"
        )
    if row.size > MAX_LATENTS_NPY_BYTES:
        raise JobInputError(
            f"spec.latents.name: {artifact.name} is {row.size:,} bytes, more than any valid "
            "latents array"
        )
    return store.get(row.key)
