"""ORM models: the database is the source of truth for users, tokens, jobs, events, artifacts,
uploaded datasets, code bundles and webhooks with their deliveries.

The schema changes only through an Alembic migration (migrations/); a test compares the two.
Nobody assigns `Job.state` directly: `shared.states` does, with compare-and-set.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import false, text


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """A stored time as an aware UTC datetime: SQLite hands back naive ones (we store UTC)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def new_id() -> str:
    """Our ids: 32 hex characters, safe in URLs and storage keys."""
    return uuid.uuid4().hex


def is_our_id(value: object) -> bool:
    """Whether `value` has the shape of `new_id()`'s ids: what a client sends as an id is
    checked before it reaches a query (PostgreSQL refuses a NUL with an error, not a miss)."""
    return isinstance(value, str) and len(value) == 32 and all(c in _HEX for c in value)


_HEX = frozenset("0123456789abcdef")


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    # Quotas set by admins; None means no limit beyond the pool's size.
    max_devices: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_queued_jobs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Bytes this user may store, overriding GANFORGE_STORAGE_QUOTA_BYTES: None follows that
    # default, 0 is no limit (shared/storage_quota.py).
    storage_quota_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiToken(Base):
    """A bearer token, stored as its SHA-256: tokens are 256 random bits, so a fast hash is
    enough and a leaked table reveals no usable token."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # None: never expires / not revoked / not used yet. Last use is recorded at most once a
    # minute per token, so authentication is not a write per request.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class IdempotencyKey(Base):
    """The first answer to a request sent with an `Idempotency-Key`: a retry of the same
    request gets this answer again and creates nothing; the same key with a different
    request is refused. Written in the transaction that creates what the request made."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotency_user_key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    # Which route and what was sent (SHA-256), to tell a retry from a reused key.
    route: Mapped[str] = mapped_column(String(100))
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_owner_created", "owner_id", "created_at", "id"),
        # Every user's jobs newest first (an admin's listing, the dashboard's jobs page): without
        # it, a sort of the whole table at each refresh (bench/db_scale.py).
        Index("ix_jobs_created", "created_at", "id"),
        # Listings by state (one user's, every user's), newest first, and a submission's
        # queued-jobs count: one index range each at a million jobs (migration 0015).
        Index("ix_jobs_state_created", "state", "created_at", "id"),
        Index("ix_jobs_owner_state_created", "owner_id", "state", "created_at", "id"),
        # A scheduler pass reads the jobs running or finished lately (fair share's recent
        # usage): without it, a scan of every job ever run at each pass (migration 0015).
        Index("ix_jobs_finished", "finished_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    devices: Mapped[int] = mapped_column(Integer, default=1)
    # Higher runs first; admins set any value, owners may only lower their own.
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Written by the scheduler on every pass while the job is queued: its place in the queue
    # (1 = next) and why it is not running yet; cleared once it is placed.
    queue_position: Mapped[int | None] = mapped_column(Integer, nullable=True)
    waiting_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Set while the job is asked to checkpoint and give its devices back (a higher-priority job
    # needs them, or its worker is stopping); the attempt then ends `preempted` and requeues.
    preempt_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # A multi-node attempt's rendezvous, "<attempt>@<host>:<port>", published by the node that
    # hosts rank 0 for the others to join.
    rendezvous: Mapped[str | None] = mapped_column(String(300), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The latest quality evaluation (worker/gan/evaluation.py) with its step, and the run's
    # warnings ([{step, attempt, message, at, kind, ended_step, ended_at}], mode collapse so
    # far: `step` where each began, `ended_step` null while it holds); both None until there
    # are any.
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    warnings: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    # What the researcher files the run under (shared/specs/labels.py; filtered by
    # shared/jobs/tags.py) and their free-text note on it.
    tags: Mapped[list[str]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Where the latest attempt was placed, [{"node", "devices"}], written with its
    # reservations and kept after they are released: the nodes a finished job ran on.
    placement: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    # The sweep that started this job (shared/sweeps/), None for a job submitted on its own.
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", name="fk_jobs_parent_id"), nullable=True, index=True
    )
    # Internal: the broker's id of the current attempt's message. Never shown in the API.
    task_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Set when its owner deleted the finished job (shared/jobs/deletion.py): its artifacts are
    # gone and no API answer shows it any more, but the row stays, so the device-seconds it
    # ran still weigh in fair share (scheduler/pool_state.py) and its events stay on record.
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Node(Base):
    """A worker's machine and its devices (GPUs, or CPU slots where there is none).

    `state` is `up`, `draining` (finishes its jobs, takes no new ones) or `dead` (silent past
    the node timeout; its jobs were requeued). `devices` lists {index, kind, model, memory_mb}.
    """

    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    # The Celery queue only this node consumes: the scheduler, not the broker, picks the node.
    queue: Mapped[str] = mapped_column(String(300))
    address: Mapped[str] = mapped_column(String(200), default="")
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    devices: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # A new id each time the worker starts: a node that comes back is told apart from one that
    # never left.
    boot_id: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Reservation(Base):
    """One device held by one job attempt. The primary key (node, device) is what makes an
    over-commit impossible: a second job cannot hold the same device, whatever races."""

    __tablename__ = "reservations"

    node_name: Mapped[str] = mapped_column(
        ForeignKey("nodes.name", ondelete="CASCADE"), primary_key=True
    )
    device_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    # The node's place in the job's gang (0 hosts the rendezvous and rank 0).
    node_rank: Mapped[int] = mapped_column(Integer, default=0)
    # Set when the node's worker took the attempt's message: each node starts its ranks once.
    claimed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SchedulerLease(Base):
    """Who schedules now. Only the holder of an unexpired lease runs a pass; a second scheduler
    takes over once the lease of a dead one runs out (a row, so SQLite and PostgreSQL alike)."""

    __tablename__ = "scheduler_lease"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class JobEvent(Base):
    """One state transition: from, to, when, why, in which attempt."""

    __tablename__ = "job_events"
    # A page of a job's events (shared/jobs/event_pages.py) is one range of (job_id, id).
    __table_args__ = (Index("ix_job_events_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    from_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_state: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JobTimingBucket(Base):
    """One bucket of a job timing histogram (shared/job_timings.py), counted in the
    transaction of the state change it measures: /metrics reads these few rows."""

    __tablename__ = "job_timing_buckets"

    metric: Mapped[str] = mapped_column(String(16), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[float] = mapped_column(Float)


class Artifact(Base):
    """A stored object of a job, so listing needs no bucket scan."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("job_id", "name", name="uq_artifacts_job_name"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(400))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Dataset(Base):
    """An uploaded training-data file (npz, zip, tar or idx3), checked when it was uploaded.

    `kind` is points or images, `items` how many samples it holds, `shape` one sample's
    shape ([d] or [channels, height, width]; None when the images differ in size).
    """

    __tablename__ = "datasets"
    __table_args__ = (Index("ix_datasets_owner_created", "owner_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(String(400))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    items: Mapped[int] = mapped_column(BigInteger)
    shape: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Shared by an admin with the whole lab: everyone may read and train on it; only its
    # owner (or an admin) may delete it.
    shared: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class CodeArchive(Base):
    """An uploaded code bundle's archive, one per content: `sha256` (of the bytes as uploaded)
    is the bundle's id, and the object at `key` is stored once however many users upload it.
    What it holds was checked and listed at its first upload (shared/codebundles/)."""

    __tablename__ = "code_archives"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(400))
    format: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger)
    unpacked_size: Mapped[int] = mapped_column(BigInteger)
    files: Mapped[int] = mapped_column(Integer)
    # Dotted names a spec may import from it (shared/codebundles/modules.py), sorted.
    modules: Mapped[list[str]] = mapped_column(JSON)
    # Shared by an admin with the whole lab: the content, whoever uploaded it, is readable
    # and usable by everyone; each owner still deletes only their own bundle row.
    shared: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CodeBundle(Base):
    """One user's bundle: their name for an archive. Per owner, so listing, reading and
    deleting are each user's own; the archive goes when its last bundle row does."""

    __tablename__ = "code_bundles"
    __table_args__ = (Index("ix_code_bundles_owner_created", "owner_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(ForeignKey("code_archives.sha256"), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Webhook(Base):
    """Where to POST a user's job events (shared/webhooks/): for all their jobs when `job_id`
    is None, else for that one job. `secret` signs each body (HMAC-SHA256); the API shows it
    once, at creation, since the receiver must have it and nobody else should."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), nullable=True, index=True
    )
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookDelivery(Base):
    """One event for one webhook: written in the transaction of the change it reports (so it
    is never lost, nor sent for a change that rolled back), then POSTed by the scheduler's
    deliverer until a 2xx or the retry bound. `body` is the exact JSON sent (and signed) at
    every attempt. `state` is pending, delivered or failed; `attempts` counts attempts begun,
    and a sender claims the row by raising it (compare-and-set), so two never send it at once."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "state", "next_try_at"),
        Index("ix_webhook_deliveries_webhook_created", "webhook_id", "created_at"),
        # Old finished deliveries, by state and age, for their removal (shared/webhooks/cleanup.py).
        Index("ix_webhook_deliveries_finished", "state", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    next_try_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WebhookAttempt(Base):
    """One POST of a delivery: when, and the receiver's status code or why there was none."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
