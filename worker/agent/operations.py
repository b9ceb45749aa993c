"""What a job's processes may ask of their node agent, one function per operation.

Every operation acts for the one job attempt the agent serves: rows are written with the
agent's attempt number (a superseded attempt writes nothing: fencing), artifacts only under
the job's own names, and whatever else a job reads (another job's checkpoint to sample from,
a latents artifact, a dataset to invert) is checked again here to be its owner's, whatever the
API checked at submission. Arguments are checked for type and shape: a request that is not
what an operation takes is a protocol violation (`ProtocolViolation`), which cuts the
connection and fails the attempt.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import select

from shared.dataset_shards import SHARDS_FORMAT
from shared.datasets import safe_filename
from shared.db import is_unreachable, session_scope, through_outages
from shared.jobs.reports import (
    SAMPLED_KINDS,
    add_warning,
    end_warning,
    latest_checkpoint,
    report_evaluation,
    report_progress,
)
from shared.models import Artifact, Dataset, Job
from shared.specs.data import DataSpec
from shared.storage import keys
from shared.storage.base import ObjectNotFoundError
from worker.agent.downloads import download
from worker.agent.inputs import fetch_data
from worker.artifact_batch import put_together
from worker.artifacts import put_artifact
from worker.channel.link import JobInputError

if TYPE_CHECKING:
    from worker.agent.server import AttemptAgent

# What an artifact's kind may be (the artifact table's `kind` as the service writes it).
ARTIFACT_KINDS = frozenset(
    {
        "checkpoint",
        "samples",
        "evaluation",
        "metrics",
        "log",
        "tensorboard",
        "timeline",
        "curves",
        "latents",
        "interpolation",
        "neighbourhood",
        "export",
        "inversion",
        "output",
        "generator",
        "generator-spec",
    }
)
# The bytes an artifact read may return (latents arrays, pictures of grids): the largest
# valid one is far smaller.
MAX_ARTIFACT_READ_BYTES = 256 << 20
RESULT_STATUSES = frozenset({"succeeded", "cancelled", "failed", "lost", "rank_failed"})


class ProtocolViolation(ValueError):
    """A request no well-behaved job process sends; the message says what was wrong."""


@dataclass
class Request:
    """One request: its arguments (the header less `op`) and payload."""

    args: dict[str, Any]
    payload: bytes | memoryview  # a view of a sealed file's mapping (put, put_batch, cache_put)

    def text(self, name: str, max_length: int = 4096, optional: bool = False) -> str | None:
        value = self.args.get(name)
        if value is None and optional:
            return None
        if not isinstance(value, str) or len(value) > max_length:
            raise ProtocolViolation(f"{name}: a string of at most {max_length} characters")
        return value

    def integer(self, name: str, optional: bool = False) -> int | None:
        value = self.args.get(name)
        if value is None and optional:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 62:
            raise ProtocolViolation(f"{name}: a whole number")
        return value

    def mapping(self, name: str) -> dict[str, Any]:
        value = self.args.get(name)
        if not isinstance(value, dict):
            raise ProtocolViolation(f"{name}: a JSON object")
        return value

    def artifact_name(self, name: str = "name") -> str:
        value = self.text(name, 200)
        assert value is not None
        if not keys.is_artifact_name(value):
            raise ProtocolViolation(f"{name}: {value[:80]!r} is not an artifact name")
        return value

    def kind(self) -> str:
        value = self.text("kind", 40)
        if value not in ARTIFACT_KINDS:
            raise ProtocolViolation(f"kind: {str(value)[:40]!r} is not an artifact kind")
        return str(value)


Reply = tuple[dict[str, Any], bytes]
Operation = Callable[["AttemptAgent", Request], Reply]


def ticket(agent: AttemptAgent, request: Request) -> Reply:
    return {"ticket": agent.ticket().to_json()}, b""


def progress(agent: AttemptAgent, request: Request) -> Reply:
    """The latest progress on the job row; a database outage skips it (the next one catches
    up) and says so, so the reporter keeps it as unwritten."""
    report, metrics = request.mapping("progress"), request.mapping("metrics")
    try:
        with session_scope(agent.settings.database_url) as session:
            report_progress(session, agent.job_id, agent.attempt, report, metrics)
    except Exception as error:
        if not is_unreachable(error):
            raise
        return {"written": False}, b""
    return {"written": True}, b""


def evaluation(agent: AttemptAgent, request: Request) -> Reply:
    step, metrics = request.integer("step"), request.mapping("metrics")
    assert step is not None
    try:
        with session_scope(agent.settings.database_url) as session:
            report_evaluation(session, agent.job_id, agent.attempt, step, metrics)
    except Exception as error:
        if not is_unreachable(error):
            raise  # a database outage skips this one; the next evaluation catches up
    return {}, b""


def warning(agent: AttemptAgent, request: Request) -> Reply:
    """A warning that begins at `step` (`kind` names it); with `ends`, the end at `step` of
    the job's open warning of that kind, answering whether one was open."""
    step, message = request.integer("step"), request.text("message", 4000)
    kind = request.text("kind", 40, optional=True)
    assert step is not None and message is not None
    ends = request.args.get("ends", False)
    if not isinstance(ends, bool) or (ends and kind is None):
        raise ProtocolViolation("ends: true or false, and true only with a kind")
    ended = False
    for retry in through_outages():
        with retry, session_scope(agent.settings.database_url) as session:
            if ends and kind is not None:
                ended = end_warning(session, agent.job_id, agent.attempt, step, kind)
            else:
                add_warning(session, agent.job_id, agent.attempt, step, message, kind)
    return {"ended": ended}, b""


def put(agent: AttemptAgent, request: Request) -> Reply:
    name, kind = request.artifact_name(), request.kind()
    step = request.integer("step", optional=True)
    store = agent.store_for(bool(request.args.get("patient", True)))
    put_artifact(
        agent.settings.database_url,
        store,
        agent.job_id,
        name,
        kind,
        request.payload,
        step,
        attempt=agent.attempt,
    )
    return {}, b""


def put_batch(agent: AttemptAgent, request: Request) -> Reply:
    """Several artifacts in one batch: their payloads one after another, `sizes` apart."""
    listed = request.args.get("items")
    if not isinstance(listed, list) or not 0 < len(listed) <= 64:
        raise ProtocolViolation("items: a list of 1 to 64 artifacts")
    items, offset = [], 0
    for item in listed:
        part = Request(item if isinstance(item, dict) else {}, b"")
        name, kind = part.artifact_name(), part.kind()
        step, size = part.integer("step", optional=True), part.integer("size")
        assert size is not None
        items.append((name, kind, request.payload[offset : offset + size], step))
        offset += size
    if offset != len(request.payload):
        raise ProtocolViolation(
            f"items: sizes add to {offset:,}, the payload is {len(request.payload):,}"
        )
    store = agent.store_for(bool(request.args.get("patient", True)))
    put_together(agent.settings.database_url, store, agent.job_id, items, attempt=agent.attempt)
    return {}, b""


def previous(agent: AttemptAgent, request: Request) -> Reply:
    """This job's own artifact as an earlier attempt stored it (log.txt, metrics.jsonl, the
    timeline), or `found: false`."""
    name = request.artifact_name()
    store = agent.store_for(bool(request.args.get("patient", True)))
    try:
        return {"found": True}, store.get(keys.artifact_key(agent.job_id, name))
    except ObjectNotFoundError:
        return {"found": False}, b""


def cache_get(agent: AttemptAgent, request: Request) -> Reply:
    key = _cache_key(request)
    try:
        return {"found": True}, agent.store.get(key)
    except ObjectNotFoundError:
        return {"found": False}, b""


def cache_put(agent: AttemptAgent, request: Request) -> Reply:
    """What every job shares (a trained evaluation classifier): made by the service's own
    code, so a job that runs a researcher's code may read the cache but never write it."""
    key = _cache_key(request)
    if agent.runs_user_code:
        return {"stored": False}, b""
    agent.store.put(key, request.payload)
    return {"stored": True}, b""


def _cache_key(request: Request) -> str:
    name = request.text("name", 200)
    try:
        return keys.cache_key(str(name))
    except KeyError as error:
        raise ProtocolViolation(f"name: {error}") from None


def checkpoint_info(agent: AttemptAgent, request: Request) -> Reply:
    """Which checkpoint `job_id` has at `step` (its latest when none): its step and digest,
    by which a warm sampler knows whether it holds it loaded already."""
    row = _checkpoint_row(agent, request)
    if row is None:
        return {"found": False}, b""
    return {"found": True, "step": row.step, "sha256": row.sha256, "size": row.size}, b""


def checkpoint(agent: AttemptAgent, request: Request) -> Reply:
    row = _checkpoint_row(agent, request)
    if row is None:
        return {"found": False}, b""
    return {"found": True, "step": row.step, "sha256": row.sha256}, agent.store.get(row.key)


def _checkpoint_row(agent: AttemptAgent, request: Request) -> Artifact | None:
    job_id = str(request.text("job_id", 64))
    step = request.integer("step", optional=True)
    with session_scope(agent.settings.database_url) as session:
        agent.check_same_owner(session, job_id, "spec.job_id")
        # Its own job's: the checkpoint to resume; another's: what sampling reads of it.
        source = session.scalar(select(Job.kind).where(Job.id == job_id))
        own = job_id == agent.job_id
        kind = "checkpoint" if own else SAMPLED_KINDS.get(str(source), "checkpoint")
        row = latest_checkpoint(session, job_id, step, kind)
        if row is not None:
            session.expunge(row)
    return row


def artifact_info(agent: AttemptAgent, request: Request) -> Reply:
    """The size of one of the owner's artifacts (latents to sample from, a grid to invert),
    after the checks that name the spec's field when it is not theirs or not there."""
    row = _owned_artifact(agent, request)
    return {"size": row.size}, b""


def artifact(agent: AttemptAgent, request: Request) -> Reply:
    row = _owned_artifact(agent, request)
    if row.size > MAX_ARTIFACT_READ_BYTES:
        raise JobInputError(f"{request.args.get('field')}.name: {row.name} is too large to read")
    return {}, agent.store.get(row.key)


def _owned_artifact(agent: AttemptAgent, request: Request) -> Artifact:
    job_id, name = str(request.text("job_id", 64)), request.artifact_name()
    field = str(request.text("field", 80))
    with session_scope(agent.settings.database_url) as session:
        agent.check_same_owner(session, job_id, f"{field}.job_id")
        row = session.scalar(
            select(Artifact).where(Artifact.job_id == job_id, Artifact.name == name)
        )
        if row is None:
            raise JobInputError(f"{field}.name: job {job_id} has no artifact {name!r}")
        session.expunge(row)
    return row


def data(agent: AttemptAgent, request: Request) -> Reply:
    """The job's training data as a folder on this node: a data root's path, or the stored
    files copied into the attempt's inputs folder (shards linked from the node's cache)."""
    try:
        spec = DataSpec.model_validate(request.mapping("data"))
    except ValidationError as error:
        raise ProtocolViolation(f"data: not a data spec ({error.error_count()} errors)") from None
    if spec.dataset_id is not None:
        _check_dataset(agent, spec.dataset_id, "spec.data.dataset_id")
    folder = Path(tempfile.mkdtemp(prefix="data-", dir=agent.folders.inputs))
    folder.chmod(0o755)
    path = fetch_data(spec, agent.store, folder, agent.settings.data_roots, agent.shards)
    return {"path": None if path is None else str(path)}, b""


def dataset_file(agent: AttemptAgent, request: Request) -> Reply:
    """An uploaded image dataset of the owner's (or a shared one) to invert: its file copied
    into the inputs folder, with what the dataset row says of it."""
    dataset_id, field = str(request.text("dataset_id", 64)), str(request.text("field", 80))
    with session_scope(agent.settings.database_url) as session:
        owner = session.scalar(select(Job.owner_id).where(Job.id == agent.job_id))
        dataset = session.get(Dataset, dataset_id)
        if dataset is None or not (dataset.owner_id == owner or dataset.shared):
            raise JobInputError(
                f"{field}.dataset_id: no dataset {dataset_id!r} among your datasets"
            )
        if dataset.kind != "images":
            raise JobInputError(f"{field}.dataset_id: dataset {dataset.id} holds points")
        if dataset.format == SHARDS_FORMAT:
            raise JobInputError(
                f"{field}.dataset_id: dataset {dataset.id} is stored as shards, which inversion "
                "does not read yet; upload its images again with shards=false"
            )
        described = {
            "filename": dataset.filename,
            "items": dataset.items,
            "channels": dataset.shape[0] if dataset.shape else None,
        }
        key = dataset.key
    folder = Path(tempfile.mkdtemp(prefix="dataset-", dir=agent.folders.inputs))
    folder.chmod(0o755)
    path = folder / safe_filename(str(described["filename"]))
    download(agent.store, key, path)
    return {**described, "path": str(path)}, b""


def _check_dataset(agent: AttemptAgent, dataset_id: str, field: str) -> Dataset:
    """The dataset when it is the job owner's or shared; anything else reads as missing."""
    with session_scope(agent.settings.database_url) as session:
        owner = session.scalar(select(Job.owner_id).where(Job.id == agent.job_id))
        dataset = session.get(Dataset, dataset_id)
        if dataset is None or not (dataset.owner_id == owner or dataset.shared):
            raise JobInputError(f"{field}: no dataset {dataset_id!r} among your datasets")
        session.expunge(dataset)
    return dataset


def rendezvous(agent: AttemptAgent, request: Request) -> Reply:
    node_rank = request.integer("node_rank")
    assert node_rank is not None
    address, port = agent.rendezvous(node_rank)
    return {"address": address, "port": port}, b""


def result(agent: AttemptAgent, request: Request) -> Reply:
    """How the attempt ended, as rank 0 or the launcher saw it (the last word counts)."""
    status = request.text("status", 20)
    if status not in RESULT_STATUSES:
        raise ProtocolViolation(f"status: {str(status)[:20]!r} is not an outcome")
    agent.record_result(str(status), str(request.text("error", 8000, optional=True) or ""))
    return {}, b""


def failure(agent: AttemptAgent, request: Request) -> Reply:
    """A rank's failure, one line its owner can act on, and whether it was the machinery's."""
    rank, message = request.integer("rank"), request.text("message", 8000)
    assert rank is not None and message is not None
    agent.record_failure(rank, message, bool(request.args.get("lost", False)))
    return {}, b""


OPERATIONS: dict[str, Operation] = {
    operation.__name__: operation
    for operation in (
        ticket,
        progress,
        evaluation,
        warning,
        put,
        put_batch,
        previous,
        cache_get,
        cache_put,
        checkpoint_info,
        checkpoint,
        artifact_info,
        artifact,
        data,
        dataset_file,
        rendezvous,
        result,
        failure,
    )
}
