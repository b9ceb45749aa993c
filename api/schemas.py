"""Pydantic models of what the API answers, for the OpenAPI document (api/openapi.py).

Requests are validated by the spec models in shared/specs/train.py; these describe responses, so
that the published document says exactly what comes back (schemathesis checks every answer
of the live API against it in tests/e2e/test_openapi_contract.py).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.jobs import MAX_PRIORITY
from api.pool import MAX_QUOTA, MAX_STORAGE_QUOTA
from shared.specs import JobKind
from shared.states import JobState


class Answer(BaseModel):
    """Answers may gain fields in a minor version; clients ignore the ones they do not know."""

    model_config = ConfigDict(extra="allow")


class FieldError(Answer):
    path: str
    message: str


class Problem(Answer):
    """RFC 9457 problem details: every 4xx and 5xx answer (application/problem+json)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


class JobLinks(Answer):
    self: str
    events: str
    artifacts: str
    cancel: str


class QueuePlace(Answer):
    position: int | None
    waiting_reason: str | None


class Placement(Answer):
    node: str
    devices: list[int]


class JobWarning(Answer):
    """A warning about the run: it began at the evaluation of `step` and, once the figures
    recovered, ended at `ended_step` (null while it holds). `kind` names what it watches
    (worker/gan/collapse_alarm.py: `modes-coverage`, `modes-drop`, `modes-kl`, the same for
    `classes`, `spread`); warnings from before kinds existed have none."""

    step: int
    attempt: int
    message: str
    at: str
    kind: str | None = None
    ended_step: int | None = None
    ended_at: str | None = None


class MetricsSeries(Answer):
    """Lines of the job's metrics.jsonl: training reports (`kind` train: losses, timing) and
    evaluations (`kind` eval: modes, W1, spread)."""

    metrics: list[dict[str, Any]]


class SweepChildren(Answer):
    """A sweep's children: how many, how many in each state, the ids in the sweep's order."""

    total: int
    states: dict[str, int]
    active: int
    ids: list[str]
    links: dict[str, str]


class Job(Answer):
    id: str = Field(pattern="^[0-9a-f]{32}$")
    kind: JobKind
    name: str
    owner: str
    state: JobState
    attempt: int
    max_attempts: int
    priority: int
    devices: int
    queue: QueuePlace | None
    error: str | None
    spec: dict[str, Any]
    progress: dict[str, Any] | None
    metrics: dict[str, Any] | None
    evaluation: dict[str, Any] | None
    warnings: list[JobWarning]
    tags: list[str]
    note: str
    parent: str | None = Field(None, description="the sweep that started this job")
    created_at: str
    updated_at: str | None
    started_at: str | None
    finished_at: str | None
    links: JobLinks
    placement: list[Placement] | None = None
    # A sweep's (single-job views): its children's summary.
    children: SweepChildren | None = None


class JobPage(Answer):
    jobs: list[Job]
    next_cursor: str | None


class CompareColumn(Answer):
    name: str = Field(description="a dotted spec path (`train.seed`) or a figure's name")
    group: Literal["spec", "figures"]


class CompareRow(Answer):
    id: str = Field(pattern="^[0-9a-f]{32}$")
    name: str
    state: JobState
    tags: list[str]
    spec: dict[str, Any] = Field(description="the job's value of each differing spec path")
    figures: dict[str, Any] = Field(
        description="its latest evaluation's numbers: each figure (null where undefined), "
        "`<figure>_interval` where stored, `step` and sample counts"
    )


class Comparison(Answer):
    jobs: list[Job]
    columns: list[CompareColumn]
    rows: list[CompareRow]
    same: dict[str, Any] = Field(description="the spec paths every job gives the same value")


class Curve(Answer):
    id: str = Field(pattern="^[0-9a-f]{32}$")
    name: str
    points: list[list[float]] = Field(description="[step, value], in the order recorded")


class Curves(Answer):
    metric: str
    curves: list[Curve]


class Event(Answer):
    from_: str | None = Field(alias="from")
    to: str
    attempt: int
    reason: str
    at: str


class EventList(Answer):
    """A page of the job's events, oldest first; `next_cursor` asks for the next page."""

    events: list[Event]
    next_cursor: str | None


class LogLines(Answer):
    """Whole lines of the job's log.txt from the offset asked; `next_offset` continues."""

    lines: list[str]
    next_offset: int


class Artifact(Answer):
    name: str
    kind: str
    size: int
    sha256: str
    step: int | None
    created_at: str
    url: str


class ArtifactList(Answer):
    artifacts: list[Artifact]


class DatasetLinks(Answer):
    self: str


class Dataset(Answer):
    id: str = Field(pattern="^[0-9a-f]{32}$")
    name: str
    filename: str
    format: str
    kind: str
    items: int
    shape: list[int] | None
    size: int
    sha256: str
    created_at: str
    shared: bool
    links: DatasetLinks


class DatasetList(Answer):
    datasets: list[Dataset]


class CodeBundleLinks(Answer):
    self: str


class CodeBundle(Answer):
    id: str = Field(pattern="^[0-9a-f]{64}$", description="the SHA-256 of the uploaded archive")
    sha256: str
    name: str
    owner: str
    format: Literal["zip", "tar.gz"]
    size: int
    unpacked_size: int
    files: int
    created_at: str
    shared: bool
    links: CodeBundleLinks


class CodeBundleDetail(CodeBundle):
    modules: list[str] = Field(
        description="the dotted names a spec may import: top-level modules and regular "
        "packages (folders with __init__.py), and every module within them"
    )


class CodeBundleList(Answer):
    bundles: list[CodeBundle]


class Token(Answer):
    id: str = Field(pattern="^[0-9a-f]{32}$")
    name: str
    state: Literal["active", "expired", "revoked"]
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None
    owner: str | None = None


class CreatedToken(Token):
    token: str = Field(description="the token itself: shown in this answer only")


class TokenList(Answer):
    tokens: list[Token]


class WebhookLinks(Answer):
    deliveries: str


class Webhook(Answer):
    """Where your job events are POSTed: for every job of yours, or for `job_id` alone."""

    id: str = Field(pattern="^[0-9a-f]{32}$")
    url: str
    events: list[Literal["job.ended", "job.warning", "sweep.ended"]]
    job_id: str | None
    created_at: str
    links: WebhookLinks


class CreatedWebhook(Webhook):
    secret: str = Field(
        description="the HMAC-SHA256 key of X-Ganforge-Signature: shown in this answer only"
    )


class WebhookList(Answer):
    webhooks: list[Webhook]


class WebhookDelivery(Answer):
    """One event sent (or being sent) to a webhook; `next_try_at` is set while pending."""

    id: str
    event: str
    job_id: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status: int | None
    last_error: str | None
    last_attempt_at: str | None
    next_try_at: str | None
    created_at: str
    delivered_at: str | None


class DeliveryList(Answer):
    deliveries: list[WebhookDelivery]


class Pool(Answer):
    nodes: list[dict[str, Any]]
    queue: list[dict[str, Any]]
    active: list[dict[str, Any]]


class NodeState(Answer):
    name: str
    state: str


class Quota(Answer):
    user: str
    max_devices: int | None
    max_queued_jobs: int | None


class QuotaRequest(BaseModel):
    """null (or left out) lifts the limit."""

    model_config = ConfigDict(extra="forbid")

    max_devices: int | None = Field(default=None, ge=0, le=MAX_QUOTA)
    max_queued_jobs: int | None = Field(default=None, ge=0, le=MAX_QUOTA)


class StorageQuota(Answer):
    """`storage_quota_bytes`: the user's own value (null: the service's default applies);
    `effective_quota_bytes`: what is enforced (null: no limit)."""

    user: str
    storage_quota_bytes: int | None
    effective_quota_bytes: int | None


class StorageQuotaRequest(BaseModel):
    """null follows GANFORGE_STORAGE_QUOTA_BYTES; 0 is no limit."""

    model_config = ConfigDict(extra="forbid")

    storage_quota_bytes: int | None = Field(ge=0, le=MAX_STORAGE_QUOTA)


class UserUsage(Answer):
    """A user's stored bytes by category; a code archive counts once per owner holding it."""

    user: str
    total_bytes: int
    artifacts_bytes: int
    datasets_bytes: int
    code_bytes: int
    quota_bytes: int | None
    over_quota: bool


class JobUsage(Answer):
    id: str = Field(pattern="^[0-9a-f]{32}$")
    name: str
    owner: str
    state: JobState
    artifacts: int
    bytes: int


class Usage(Answer):
    """`users`: the caller (admins with ?all=true: every user, largest first);
    `largest_jobs`: the 10 jobs among theirs holding the most artifact bytes."""

    users: list[UserUsage]
    largest_jobs: list[JobUsage]


class ShareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shared: bool


class PriorityRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: int = Field(ge=-MAX_PRIORITY, le=MAX_PRIORITY)


class Health(Answer):
    status: str


class Readiness(Answer):
    status: Literal["ready", "not ready"]
    checks: dict[str, str]
