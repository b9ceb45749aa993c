"""JSON shapes of the public API. Internal columns (broker task ids, webhook secrets) never
appear here."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Unpack

from sqlalchemy import Row

from shared.codebundles.bundles import BundleView
from shared.models import (
    ApiToken,
    Artifact,
    Dataset,
    Job,
    JobEvent,
    Webhook,
    WebhookDelivery,
    as_utc,
    utcnow,
)


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return as_utc(moment).isoformat()


def job_json(
    job: Job | Row[Any], owner: str, placement: dict[str, list[int]] | None = None
) -> dict[str, Any]:
    """A job (a row or a row of shared.jobs.requests.JOB_VIEW_COLUMNS) and its owner's name;
    `placement` (the devices it holds, by node) is shown by the single-job view."""
    queued = job.state == "queued"
    body = {
        "id": job.id,
        "kind": job.kind,
        "name": job.name,
        "owner": owner,
        "state": job.state,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "priority": job.priority,
        "devices": job.devices,
        "queue": (
            {"position": job.queue_position, "waiting_reason": job.waiting_reason}
            if queued
            else None
        ),
        "error": job.error,
        "spec": job.spec,
        "progress": job.progress,
        "metrics": job.metrics,
        "evaluation": job.evaluation,
        "warnings": job.warnings or [],
        "tags": job.tags or [],
        "note": job.note or "",
        # The sweep that started it (GET /api/v1/jobs?parent=<id> lists a sweep's children).
        "parent": job.parent_id,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "links": {
            "self": f"/api/v1/jobs/{job.id}",
            "events": f"/api/v1/jobs/{job.id}/events",
            "artifacts": f"/api/v1/jobs/{job.id}/artifacts",
            "cancel": f"/api/v1/jobs/{job.id}/cancel",
        },
    }
    if placement is not None:
        body["placement"] = [{"node": n, "devices": d} for n, d in sorted(placement.items())]
    return body


def event_json(event: JobEvent | Row[Unpack[tuple[Any, ...]]]) -> dict[str, Any]:
    return {
        "from": event.from_state,
        "to": event.to_state,
        "attempt": event.attempt,
        "reason": event.reason,
        "at": iso(event.created_at),
    }


def artifact_json(artifact: Artifact) -> dict[str, Any]:
    return {
        "name": artifact.name,
        "kind": artifact.kind,
        "size": artifact.size,
        "sha256": artifact.sha256,
        "step": artifact.step,
        "created_at": iso(artifact.created_at),
        "url": f"/api/v1/jobs/{artifact.job_id}/artifacts/{artifact.name}",
    }


def dataset_json(dataset: Dataset) -> dict[str, Any]:
    return {
        "id": dataset.id,
        "name": dataset.name,
        "filename": dataset.filename,
        "format": dataset.format,
        "kind": dataset.kind,
        "items": dataset.items,
        "shape": dataset.shape,
        "size": dataset.size,
        "sha256": dataset.sha256,
        "created_at": iso(dataset.created_at),
        "shared": dataset.shared,
        "links": {"self": f"/api/v1/datasets/{dataset.id}"},
    }


def code_bundle_json(view: BundleView, *, modules: bool = False) -> dict[str, Any]:
    """A code bundle; `modules` (the single-bundle view) adds what a spec may import from it."""
    bundle, archive = view.bundle, view.archive
    body = {
        "id": bundle.id,
        "sha256": archive.sha256,
        "name": bundle.name,
        "owner": view.owner,
        "format": archive.format,
        "size": archive.size,
        "unpacked_size": archive.unpacked_size,
        "files": archive.files,
        "created_at": iso(bundle.created_at),
        "shared": archive.shared,
        "links": {"self": f"/api/v1/code/{bundle.id}"},
    }
    if modules:
        body["modules"] = list(archive.modules)
    return body


def token_json(token: ApiToken, owner: str | None) -> dict[str, Any]:
    """A token's description; never its value or hash."""
    now = utcnow()
    if token.revoked_at is not None:
        state = "revoked"
    elif token.expires_at is not None and as_utc(token.expires_at) <= now:
        state = "expired"
    else:
        state = "active"
    described = {
        "id": token.id,
        "name": token.label,
        "state": state,
        "created_at": iso(token.created_at),
        "expires_at": iso(token.expires_at),
        "revoked_at": iso(token.revoked_at),
        "last_used_at": iso(token.last_used_at),
    }
    return described if owner is None else {**described, "owner": owner}


def webhook_json(webhook: Webhook) -> dict[str, Any]:
    """A webhook; never its secret (the creation's answer adds it, once)."""
    return {
        "id": webhook.id,
        "url": webhook.url,
        "events": list(webhook.events),
        "job_id": webhook.job_id,
        "created_at": iso(webhook.created_at),
        "links": {"deliveries": f"/api/v1/webhooks/{webhook.id}/deliveries"},
    }


def delivery_json(delivery: WebhookDelivery) -> dict[str, Any]:
    """A delivery and its latest attempt; `next_try_at` only while it is pending."""
    return {
        "id": delivery.id,
        "event": delivery.event,
        "job_id": delivery.job_id,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "last_attempt_at": iso(delivery.last_attempt_at),
        "next_try_at": iso(delivery.next_try_at) if delivery.state == "pending" else None,
        "created_at": iso(delivery.created_at),
        "delivered_at": iso(delivery.delivered_at),
    }
