"""What the agent fetches for a job's processes: their data files and the uploads an inversion
reads, written into the attempt's inputs folder (the agent's, which the job's processes may
read and never write), so no process of the job needs a storage key to read its own data."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from shared.datafiles.roots import DataPathRefusedError, check_data_path
from shared.specs.data import DataSpec
from shared.storage import Storage, keys
from worker.channel.link import JobInputError


def fetch_data(
    data: DataSpec, store: Storage, folder: Path, data_roots: Sequence[Path] = ()
) -> Path | None:
    """A local folder holding the data files: the spec's path (checked against the data
    roots again here, on the disk that counts), or a copy of the store prefix in `folder`."""
    if data.path is not None:
        try:
            path = check_data_path(data.path, data_roots)
        except DataPathRefusedError as refused:
            raise JobInputError(f"spec.data.path: {refused}") from None
        if not path.exists():
            raise JobInputError(f"spec.data.path: {data.path} does not exist on this worker")
        return path
    if data.dataset_id is not None:
        return _fetch_dataset(data.dataset_id, store, folder)
    if data.key is None:
        return None
    prefix = data.key.rstrip("/") + "/"
    objects = store.list(prefix) or store.list(data.key)
    if not objects:
        raise JobInputError(f"spec.data.key: nothing stored under {data.key!r}")
    target = folder / "data"
    target.mkdir(parents=True, exist_ok=True)
    for obj in objects:  # streamed: a prefix of shards may hold gigabytes
        download(store, obj.key, target / obj.key.rsplit("/", 1)[-1])
    return target


def _fetch_dataset(dataset_id: str, store: Storage, folder: Path) -> Path:
    """An upload's file, streamed to `<folder>/data/` (uploads may be gigabytes)."""
    objects = store.list(keys.dataset_prefix(dataset_id))
    if not objects:
        raise JobInputError(f"spec.data.dataset_id: dataset {dataset_id} is no longer stored")
    target = folder / "data"
    target.mkdir(parents=True, exist_ok=True)
    for obj in objects:
        download(store, obj.key, target / obj.key.rsplit("/", 1)[-1])
    return target


def download(store: Storage, key: str, path: Path) -> None:
    with path.open("wb") as file:
        for chunk in store.open(key):
            file.write(chunk)
