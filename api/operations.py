"""The operations of the OpenAPI document (api/openapi.py): one `Operation` per route, with
its answer model, status, body, query and path parameters.

Kept apart from the code that turns them into the document, so that adding a route means
adding one entry here. A test (tests/unit/test_openapi.py) checks that this table and the
app's routes are the same set, so a route cannot be added without its entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, get_args

from pydantic import BaseModel

from api import schemas
from api.media_types import DOWNLOAD, artifact_media_types
from api.tokens import TokenRequest
from api.webhooks import WebhookRequest
from shared.jobs.event_pages import DEFAULT_EVENTS_PAGE_SIZE, MAX_EVENTS_PAGE_SIZE
from shared.specs import JobKind, JobRequest
from shared.specs.labels import MAX_TAGS, TAG_PATTERN, JobLabels
from shared.storage import keys

ID_PATTERN = "^[0-9a-f]{32}$"
SHA256_PATTERN = "^[0-9a-f]{64}$"
NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    answer: type[BaseModel] | None  # None: no JSON body (204, a download)
    status: int = 200
    body: type[BaseModel] | str | None = None  # a model, "multipart", or None
    query: tuple[dict[str, Any], ...] = ()
    public: bool = False
    extra_statuses: tuple[int, ...] = field(default=())
    # Other media types the success answer may have (text, an event stream), as strings.
    also: tuple[str, ...] = ()
    # The media types of an answer that is not JSON (`answer` None): a download by default.
    media: tuple[str, ...] = (DOWNLOAD,)
    # Path parameters described here rather than by `PATH_PARAMETERS` (name -> parameter).
    path_parameters: tuple[tuple[str, dict[str, Any]], ...] = ()


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


JOB = "/api/v1/jobs/{job_id}"
CODE = "/api/v1/code/{code_id}"
# The download route is `<path:name>` (Flask's `path` converter): the name runs to the end of
# the path, `/` included. An OpenAPI path template cannot say that a parameter spans segments,
# so the parameter says it: its pattern is the one artifact names are built to (one folder at
# most, shared.storage.keys) and its example has a `/`. A client that follows the template's
# rules percent-encodes it (`%2F`); the server decodes the path before routing, so
# `samples%2Fstep-000100.png` and `samples/step-000100.png` reach the same route
# (tests/e2e/test_openapi_contract.py fetches a real job's artifacts both ways).
ARTIFACT_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "the artifact's name as the job's artifact list gives it; it may hold one "
    "`/` (`samples/step-000100.png`), sent as is or as `%2F`: the route takes the rest of the "
    "path",
    "schema": {"type": "string", "pattern": keys.ARTIFACT_NAME.pattern},
    "example": keys.samples_name(100),
}
EVENT_STREAM = "text/event-stream"
TAG = _query(
    "tag",
    {"type": "array", "items": {"type": "string", "pattern": TAG_PATTERN}, "maxItems": MAX_TAGS},
    "only jobs with this tag; repeat it for jobs with every one",
)
# `?tag=a&tag=b`, not `?tag=a,b`: a tag may not hold a comma, but the form is the usual one.
TAG["style"], TAG["explode"] = "form", True
IDS = _query(
    "ids",
    {"type": "string", "pattern": "^[0-9a-f]{32}(,[0-9a-f]{32}){0,99}$"},
    "whole job ids, comma-separated (at most 100); with `tag`, both sets",
)
AFTER = _query(
    "after",
    {"type": "string", "pattern": "^[0-9]{1,18}(\\.[0-9]{1,18}){0,2}$"},
    "event streams: resume after this message id (as Last-Event-ID does)",
)
OPERATIONS: tuple[Operation, ...] = (
    Operation("get", "/healthz", "Liveness: the process answers", schemas.Health, public=True),
    Operation(
        "get",
        "/readyz",
        "Readiness: database, broker and storage, each with its status",
        schemas.Readiness,
        public=True,
        extra_statuses=(503,),
    ),
    Operation(
        "post", "/api/v1/jobs", "Submit a training or sampling job", schemas.Job, 201, JobRequest
    ),
    Operation(
        "get",
        "/api/v1/jobs",
        "Your jobs, newest first, a page at a time",
        schemas.JobPage,
        query=(
            _query("state", {"type": "string"}, "only jobs in this state"),
            _query("kind", {"type": "string", "enum": list(get_args(JobKind))}, "only this kind"),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 200}, "page size"),
            _query("cursor", {"type": "string"}, "next_cursor of the previous page"),
            _query("all", {"type": "string", "enum": ["true", "false"]}, "admins: every user's"),
            _query(
                "id_prefix", {"type": "string", "pattern": "^[0-9a-f]{1,32}$"}, "ids starting so"
            ),
            _query("parent", {"type": "string", "pattern": "^[0-9a-f]{32}$"}, "a sweep's children"),
            TAG,
            _query(
                "q",
                {"type": "string", "maxLength": 200},
                "only jobs whose name or note holds this text, in any case",
            ),
        ),
    ),
    Operation("get", JOB, "One job, with the devices it holds", schemas.Job),
    Operation(
        "patch",
        JOB,
        "Change a job's tags and/or note (owner or admin); what is given replaces",
        schemas.Job,
        body=JobLabels,
    ),
    Operation(
        "get",
        "/api/v1/compare",
        "Jobs side by side: the spec fields that differ, and each one's final figures",
        schemas.Comparison,
        query=(IDS, TAG),
    ),
    Operation(
        "get",
        "/api/v1/compare/curves",
        "One metric over steps for each job, from its metrics.jsonl",
        schemas.Curves,
        query=(
            IDS,
            TAG,
            {
                **_query(
                    "metric",
                    {"type": "string", "pattern": "^[A-Za-z0-9_./:-]{1,100}$"},
                    "a metrics.jsonl name (`Loss/G/loss`, `high_quality`) or `loss_g`, "
                    "`loss_d`, `loss_d_reg`",
                ),
                "required": True,
            },
        ),
    ),
    Operation(
        "post",
        JOB + "/priority",
        "Change a job's priority (owners may only lower it)",
        schemas.Job,
        body=schemas.PriorityRequest,
    ),
    Operation("post", JOB + "/cancel", "Cancel a job (idempotent)", schemas.Job, 202),
    Operation(
        "delete",
        JOB,
        "Delete a finished job with its artifacts, stored objects and events (409 while it is "
        "unfinished or unfinished jobs read it)",
        None,
        204,
    ),
    Operation(
        "get",
        JOB + "/events",
        "The job's state changes, oldest first, a page at a time (follow `next_cursor`); "
        "`Accept: text/event-stream` follows it live (state, progress, log, artifact messages, "
        "then end); a stream past the API's stream bounds is a 429 problem with Retry-After "
        "(poll instead)",
        schemas.EventList,
        query=(
            _query(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": MAX_EVENTS_PAGE_SIZE},
                f"page size (default {DEFAULT_EVENTS_PAGE_SIZE})",
            ),
            _query(
                "cursor",
                {"type": "string", "pattern": "^[0-9]{1,19}$"},
                "next_cursor of the previous page",
            ),
            AFTER,
        ),
        also=(EVENT_STREAM,),
    ),
    Operation(
        "get",
        JOB + "/logs",
        "The job's log so far (text/plain: as text); `Accept: text/event-stream` follows it "
        "(429 with Retry-After past the stream bounds)",
        schemas.LogLines,
        query=(
            _query("offset", {"type": "integer", "minimum": 0}, "start at this byte offset"),
            AFTER,
        ),
        also=("text/plain", EVENT_STREAM),
    ),
    Operation(
        "get",
        JOB + "/metrics",
        "The job's metric series (training reports and quality evaluations)",
        schemas.MetricsSeries,
        query=(
            _query("kind", {"type": "string", "enum": ["train", "eval"]}, "only this kind"),
            _query("from_step", {"type": "integer", "minimum": 0}, "first step, inclusive"),
            _query("to_step", {"type": "integer", "minimum": 0}, "last step, inclusive"),
        ),
    ),
    Operation(
        "get",
        JOB + "/artifacts",
        "The job's checkpoints, grids, metrics and log",
        schemas.ArtifactList,
    ),
    Operation(
        "get",
        JOB + "/artifacts/{name}",
        "An artifact's bytes, typed by its name's suffix (or a redirect to S3)",
        None,
        media=artifact_media_types(),
        path_parameters=(("name", ARTIFACT_NAME),),
        query=(
            _query(
                "redirect",
                {"type": "string", "enum": ["true", "false"]},
                "false: stream the bytes through the API",
            ),
        ),
        extra_statuses=(302,),
    ),
    Operation(
        "post",
        "/api/v1/datasets",
        "Upload training data (multipart: file, name)",
        schemas.Dataset,
        201,
        "multipart",
        extra_statuses=(413,),
    ),
    Operation("get", "/api/v1/datasets", "Your uploaded datasets", schemas.DatasetList),
    Operation("get", "/api/v1/datasets/{dataset_id}", "One dataset", schemas.Dataset),
    Operation(
        "post",
        "/api/v1/datasets/{dataset_id}/share",
        "Admins: share a dataset with the whole lab, read-only (or stop)",
        schemas.Dataset,
        body=schemas.ShareRequest,
    ),
    Operation("delete", "/api/v1/datasets/{dataset_id}", "Delete a dataset", None, 204),
    Operation(
        "post",
        "/api/v1/code",
        "Upload a Python package, zip or tar.gz (multipart: file, name); its id is the "
        "archive's SHA-256, and the same bytes again answer 200 with the bundle you have",
        schemas.CodeBundleDetail,
        201,
        "multipart",
        extra_statuses=(200, 413),
    ),
    Operation(
        "get",
        "/api/v1/code",
        "Your code bundles and those shared with the lab",
        schemas.CodeBundleList,
    ),
    Operation(
        "get", CODE, "One code bundle, with the modules a spec may name", schemas.CodeBundleDetail
    ),
    Operation(
        "post",
        CODE + "/share",
        "Admins: share a code bundle with the whole lab, read-only (or stop)",
        schemas.CodeBundleDetail,
        body=schemas.ShareRequest,
    ),
    Operation(
        "delete",
        CODE,
        "Delete your code bundle (409 while unfinished jobs name it)",
        None,
        204,
    ),
    Operation(
        "get",
        "/api/v1/usage",
        "Bytes you store (artifacts, datasets, code) against your quota, and your largest jobs "
        "(admins: ?all=true for every user)",
        schemas.Usage,
        query=(_query("all", {"type": "string", "enum": ["true", "false"]}, "admins: everyone"),),
    ),
    Operation(
        "get",
        "/api/v1/tokens",
        "Your tokens (admins: ?all=true for everyone's)",
        schemas.TokenList,
        query=(_query("all", {"type": "string", "enum": ["true", "false"]}, "admins"),),
    ),
    Operation(
        "post",
        "/api/v1/tokens",
        "Create a token; its value is in this answer only",
        schemas.CreatedToken,
        201,
        TokenRequest,
    ),
    Operation(
        "delete", "/api/v1/tokens/{token_id}", "Revoke a token (admins: anyone's)", schemas.Token
    ),
    Operation(
        "post",
        "/api/v1/webhooks",
        "Have job events POSTed to a URL, signed; the secret is in this answer only",
        schemas.CreatedWebhook,
        201,
        WebhookRequest,
    ),
    Operation("get", "/api/v1/webhooks", "Your webhooks (without secrets)", schemas.WebhookList),
    Operation(
        "delete", "/api/v1/webhooks/{webhook_id}", "Delete a webhook and its deliveries", None, 204
    ),
    Operation(
        "get",
        "/api/v1/webhooks/{webhook_id}/deliveries",
        "The webhook's latest 50 deliveries: state, attempts, last answer, next try",
        schemas.DeliveryList,
    ),
    Operation("get", "/api/v1/pool", "The pool: nodes, devices, queue", schemas.Pool, public=True),
    Operation(
        "get",
        "/metrics",
        "Prometheus metrics: jobs by state, queue waits, run times, devices, request latency "
        "(a bearer token only when GANFORGE_METRICS_TOKEN is set)",
        None,
        public=True,
        media=("text/plain",),
    ),
    Operation(
        "post",
        "/api/v1/admin/nodes/{name}/drain",
        "Admins: stop placing work on a node",
        schemas.NodeState,
    ),
    Operation(
        "post",
        "/api/v1/admin/nodes/{name}/undrain",
        "Admins: place work on it again",
        schemas.NodeState,
    ),
    Operation("delete", "/api/v1/admin/nodes/{name}", "Admins: forget a stopped node", None, 204),
    Operation(
        "put",
        "/api/v1/admin/users/{name}/quota",
        "Admins: set a user's quotas",
        schemas.Quota,
        body=schemas.QuotaRequest,
    ),
    Operation(
        "put",
        "/api/v1/admin/users/{name}/storage-quota",
        "Admins: set a user's storage quota in bytes (null: the service's default, 0: none)",
        schemas.StorageQuota,
        body=schemas.StorageQuotaRequest,
    ),
)

PATH_PARAMETERS = {
    "job_id": ID_PATTERN,
    "dataset_id": ID_PATTERN,
    "code_id": SHA256_PATTERN,
    "token_id": ID_PATTERN,
    "webhook_id": ID_PATTERN,
    "name": NAME_PATTERN,
}
