"""Stored things for the usage, quota and delete tests, written as the service writes them:
artifacts through worker/artifacts.py put_artifact, datasets and code bundles as rows (their
bytes play no part in what is counted)."""

from __future__ import annotations

from sqlalchemy import select

from shared.config import Settings
from shared.db import session_scope
from shared.models import CodeArchive, CodeBundle, Dataset, User, new_id
from shared.states import JobState
from shared.storage import open_storage
from shared.storage.keys import checkpoint_name, code_key
from tests.unit.job_factories import move, queued_job
from worker.artifacts import put_artifact

S = JobState


def finished_job(settings: Settings, owner: str = "alice", *sizes: int) -> str:
    """A succeeded training job of `owner` with one checkpoint of each size, steps 1, 2, ..."""
    job_id = queued_job(settings, owner)
    move(settings, job_id, S.QUEUED, S.SCHEDULED, S.RUNNING, S.SUCCEEDED)
    store = open_storage(settings)
    for step, size in enumerate(sizes, start=1):
        name = checkpoint_name(step)
        put_artifact(settings.database_url, store, job_id, name, "checkpoint", b"x" * size, step)
    return job_id


def user_id(settings: Settings, name: str) -> str:
    with session_scope(settings.database_url) as session:
        return str(session.scalar(select(User.id).where(User.name == name)))


def dataset_row(settings: Settings, owner: str, size: int) -> str:
    with session_scope(settings.database_url) as session:
        dataset_id = new_id()
        session.add(
            Dataset(
                id=dataset_id,
                owner_id=user_id(settings, owner),
                name="d",
                filename="d.npz",
                key=f"uploads/{dataset_id}/d.npz",
                size=size,
                sha256="0" * 64,
                format="npz",
                kind="points",
                items=1,
            )
        )
        return dataset_id


def code_rows(settings: Settings, owners: list[str], size: int, sha256: str = "c" * 64) -> None:
    """One archive of `size` bytes, held by each of `owners` under their own bundle name."""
    with session_scope(settings.database_url) as session:
        session.add(
            CodeArchive(
                sha256=sha256,
                key=code_key(sha256, "zip"),
                format="zip",
                size=size,
                unpacked_size=size,
                files=1,
                modules=["pkg"],
            )
        )
        session.flush()
        for owner in owners:
            session.add(CodeBundle(id=sha256, owner_id=user_id(settings, owner), name=owner))
