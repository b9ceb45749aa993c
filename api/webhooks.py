"""/api/v1/webhooks: where a user's job events are POSTed (shared/webhooks/), and what
became of each delivery.

The signing secret appears once, in the answer to the creation, as a token's value does:
the receiver needs it, nobody reading the list later should see it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from flask import Blueprint, request
from pydantic import Field, ValidationError, field_validator

from api.auth import current_user, require_user
from api.problems import ApiProblem
from api.serializers import delivery_json, webhook_json
from api.state import db_session, settings
from shared.models import Job
from shared.specs import problems_from
from shared.specs.data import StrictModel
from shared.webhooks.addresses import AddressPolicy, AddressRefusedError, check_url
from shared.webhooks.subscriptions import (
    EVENTS,
    MAX_WEBHOOKS_PER_USER,
    count_webhooks,
    create_webhook,
    delete_webhook,
    get_webhook,
    list_webhooks,
    recent_deliveries,
)

bp = Blueprint("webhooks", __name__, url_prefix="/api/v1/webhooks")
bp.before_request(require_user)

# Longer URLs are refused by many servers and proxies; no receiver needs one.
MAX_URL_LENGTH = 2000
# The names of shared.webhooks.subscriptions.EVENTS, as a type the OpenAPI document lists.
WebhookEvent = Literal["job.ended", "job.warning", "sweep.ended"]
assert set(get_args(WebhookEvent)) == set(EVENTS), "the two lists of events differ"


class WebhookRequest(StrictModel):
    """`{"url": "https://...", "events": ["job.ended"], "job_id": "<id>"}`: every event when
    `events` is left out; every job of yours when `job_id` is."""

    url: Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH)]
    events: list[WebhookEvent] = Field(
        default_factory=lambda: list(get_args(WebhookEvent)), min_length=1
    )
    job_id: Annotated[str, Field(pattern="^[0-9a-f]{32}$")] | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if any(c <= " " or c == "\x7f" for c in url):
            raise ValueError("must not hold spaces or control characters")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (a port that is not a number raises here)
        except ValueError:
            raise ValueError("is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http or https URL with a host, as https://host/path")
        return url


@bp.post("")
def create() -> tuple[dict[str, Any], int]:
    try:
        wanted = WebhookRequest.model_validate(request.get_json(silent=True) or {})
    except ValidationError as exc:
        problems = problems_from(exc, model=WebhookRequest)
        raise ApiProblem(
            422,
            "Invalid webhook",
            "; ".join(f"{p['path']}: {p['message']}" for p in problems),
            errors=problems,
        ) from None
    policy = AddressPolicy(settings().webhook_private_addresses)
    try:
        check_url(wanted.url, policy)
    except AddressRefusedError as refused:
        raise _invalid("url", str(refused)) from None
    session, user = db_session(), current_user()
    if wanted.job_id is not None:
        job = session.get(Job, wanted.job_id)
        if job is None or job.owner_id != user.id or job.deleted_at is not None:
            raise _invalid("job_id", "no job of yours has this id")
    if count_webhooks(session, user) >= MAX_WEBHOOKS_PER_USER:
        raise ApiProblem(
            409,
            "Too many webhooks",
            f"a user may have {MAX_WEBHOOKS_PER_USER} webhooks; delete one first",
        )
    events = list(dict.fromkeys(wanted.events))
    webhook = create_webhook(session, user, wanted.url, events, wanted.job_id)
    session.commit()
    return {**webhook_json(webhook), "secret": webhook.secret}, 201


@bp.get("")
def list_() -> dict[str, Any]:
    """Your webhooks (never their secrets)."""
    return {"webhooks": [webhook_json(w) for w in list_webhooks(db_session(), current_user())]}


@bp.delete("/<id:webhook_id>")
def delete(webhook_id: str) -> tuple[str, int]:
    session = db_session()
    delete_webhook(session, current_user(), webhook_id)
    session.commit()
    return "", 204


@bp.get("/<id:webhook_id>/deliveries")
def deliveries(webhook_id: str) -> dict[str, Any]:
    """The webhook's latest deliveries, newest first."""
    session = db_session()
    webhook = get_webhook(session, current_user(), webhook_id)
    return {"deliveries": [delivery_json(d) for d in recent_deliveries(session, webhook)]}


def _invalid(field: str, message: str) -> ApiProblem:
    return ApiProblem(
        422, "Invalid webhook", f"{field}: {message}", errors=[{"path": field, "message": message}]
    )
