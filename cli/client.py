"""The Python client of the HTTP API, used by the CLI (and usable from notebooks)."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from sseclient import SSEClient

# Seconds a single HTTP call may take before the client gives up on it.
REQUEST_TIMEOUT_S = 30
# Seconds a stream may stay silent: the server sends a keep-alive every 15 s.
STREAM_READ_TIMEOUT_S = 60
# Seconds before reconnecting to a stream the server ended (it does every few minutes, so
# that no stream holds a server thread for long) or that broke.
RECONNECT_S = 1.0
# Broken connections in a row, with no message between them, before a stream gives up.
STREAM_TRIES = 5
EVENT_STREAM = "text/event-stream"


class ApiError(RuntimeError):
    """The API answered with a problem document; the message is its detail and field errors."""

    def __init__(self, status: int, problem: dict[str, Any]):
        self.status, self.problem = status, problem
        errors = problem.get("errors") or []
        # With field errors the detail is those errors run together: the title heads them.
        headline = problem.get("title") if errors else problem.get("detail")
        detail = headline or problem.get("title") or f"HTTP {status}"
        lines = [f"{detail} (HTTP {status})"]
        lines += [f"  {e.get('path')}: {e.get('message')}" for e in errors]
        super().__init__("\n".join(lines))


class ServiceUnreachableError(RuntimeError):
    """No answer from the service at all: refused, timed out, unknown host, broken TLS."""

    def __init__(self, url: str, reason: str):
        self.url, self.reason = url, reason
        super().__init__(f"cannot reach the service at {url}: {reason}")


class StreamUnavailableError(RuntimeError):
    """The service answered, but not with an event stream (an older API, a proxy that
    buffers): callers fall back to polling."""


class StreamRefusedError(StreamUnavailableError):
    """The service refused a stream for now (429: the token's or the process's streams are at
    their limit); callers poll instead, which the service always answers."""


class DownloadCorruptError(RuntimeError):
    """The bytes downloaded do not have the SHA-256 the artifact list gives."""


# States a job never leaves; `follow` stops at them.
FINAL_STATES = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class FeedEvent:
    """One message of a job's live feed: `name` is state, progress, log, artifact or end;
    `data` its JSON; `id` where the feed resumes after it."""

    name: str
    data: dict[str, Any]
    id: str | None


class Client:
    def __init__(self, base_url: str, token: str | None):
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.http.request(
                method, self.base_url + path, timeout=REQUEST_TIMEOUT_S, **kwargs
            )
        except (requests.ConnectionError, requests.Timeout) as error:
            raise ServiceUnreachableError(self.base_url, _reason(error)) from None
        _raise_for_problem(response)
        return response

    def submit(
        self,
        kind: str,
        name: str,
        spec: dict[str, Any],
        tags: list[str] | None = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": kind, "name": name, "spec": spec}
        if tags:
            body["tags"] = tags
        if note:
            body["note"] = note
        return self._call("POST", "/api/v1/jobs", json=body).json()  # type: ignore[no-any-return]

    def set_labels(
        self, job_id: str, tags: list[str] | None = None, note: str | None = None
    ) -> dict[str, Any]:
        """Replace the job's tags and/or note (None leaves one as it is)."""
        body = {k: v for k, v in (("tags", tags), ("note", note)) if v is not None}
        return self._call("PATCH", f"/api/v1/jobs/{job_id}", json=body).json()  # type: ignore[no-any-return]

    def compare(self, ids: list[str], tags: list[str]) -> dict[str, Any]:
        """The jobs side by side: GET /api/v1/compare (columns, rows, same, jobs)."""
        return self._call("GET", "/api/v1/compare", params=_picked(ids, tags)).json()  # type: ignore[no-any-return]

    def curves(self, ids: list[str], tags: list[str], metric: str) -> dict[str, Any]:
        """One metric's [step, value] series of each job (GET /api/v1/compare/curves)."""
        params = {**_picked(ids, tags), "metric": metric}
        return self._call("GET", "/api/v1/compare/curves", params=params).json()  # type: ignore[no-any-return]

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/jobs/{job_id}").json()  # type: ignore[no-any-return]

    def jobs(self, **filters: Any) -> dict[str, Any]:
        params = {k: v for k, v in filters.items() if v is not None}
        return self._call("GET", "/api/v1/jobs", params=params).json()  # type: ignore[no-any-return]

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._call("POST", f"/api/v1/jobs/{job_id}/cancel").json()  # type: ignore[no-any-return]

    def delete_job(self, job_id: str) -> None:
        """Delete a finished job with everything it stored."""
        self._call("DELETE", f"/api/v1/jobs/{job_id}")

    def usage(self, every_user: bool = False) -> dict[str, Any]:
        params = {"all": "true"} if every_user else {}
        return self._call("GET", "/api/v1/usage", params=params).json()  # type: ignore[no-any-return]

    def set_storage_quota(self, user: str, quota_bytes: int | None) -> dict[str, Any]:
        """None: the service's default applies to `user`; 0: no limit."""
        body = {"storage_quota_bytes": quota_bytes}
        return self._call("PUT", f"/api/v1/admin/users/{user}/storage-quota", json=body).json()  # type: ignore[no-any-return]

    def events(self, job_id: str) -> list[dict[str, Any]]:
        """Every event of the job, oldest first, following the pages' cursors."""
        events: list[dict[str, Any]] = []
        params: dict[str, str] = {}
        while True:
            page = self._call("GET", f"/api/v1/jobs/{job_id}/events", params=params).json()
            events.extend(page["events"])
            if page.get("next_cursor") is None:
                return events
            params = {"cursor": page["next_cursor"]}

    def metrics(self, job_id: str, **filters: Any) -> list[dict[str, Any]]:
        """The job's metric series (`kind`: train or eval; `from_step`, `to_step`)."""
        params = {k: v for k, v in filters.items() if v is not None}
        answer = self._call("GET", f"/api/v1/jobs/{job_id}/metrics", params=params).json()
        return answer["metrics"]  # type: ignore[no-any-return]

    def artifacts(self, job_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/api/v1/jobs/{job_id}/artifacts").json()["artifacts"]  # type: ignore[no-any-return]

    def download(
        self,
        job_id: str,
        name: str,
        target: Path,
        sha256: str | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> Path:
        """Write artifact `name` to `target` (through `target`.part, renamed when whole);
        given `sha256`, bytes that do not match it raise DownloadCorruptError and are not
        kept. `on_bytes` is told of each chunk's size (a progress bar)."""
        response = self._call("GET", f"/api/v1/jobs/{job_id}/artifacts/{name}", stream=True)
        partial = target.with_name(target.name + ".part")
        digest = hashlib.sha256()
        try:
            with partial.open("wb") as out:
                for chunk in response.iter_content(chunk_size=1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
            if sha256 is not None and digest.hexdigest() != sha256:
                raise DownloadCorruptError(
                    f"{name}: the bytes downloaded have SHA-256 {digest.hexdigest()}, "
                    f"the artifact list says {sha256}; not kept"
                )
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return target

    def log(self, job_id: str) -> str:
        """The job's log so far, as text."""
        headers = {"Accept": "text/plain"}
        return self._call("GET", f"/api/v1/jobs/{job_id}/logs", headers=headers).text

    def log_lines(self, job_id: str, offset: int = 0) -> tuple[list[str], int]:
        """Whole lines of the job's log from byte `offset`, and the offset after them."""
        params = {"offset": offset}
        answer = self._call("GET", f"/api/v1/jobs/{job_id}/logs", params=params).json()
        return answer["lines"], answer["next_offset"]

    def feed(
        self, job_id: str, what: str = "events", after: str | None = None
    ) -> Iterator[FeedEvent]:
        """The job's live feed (`events`: state, progress, log, artifact; `logs`: log lines)
        until its `end` message, yielded last. A stream the server ends (it does every few
        minutes) or that breaks is opened again where it stopped (Last-Event-ID); after
        STREAM_TRIES breaks in a row, ServiceUnreachableError. StreamUnavailableError when
        the service does not stream at all."""
        last_id, broken = after, 0
        while True:
            try:
                for event in self._stream(f"/api/v1/jobs/{job_id}/{what}", last_id):
                    broken = 0
                    last_id = event.id or last_id
                    yield event
                    if event.name == "end":
                        return
            except (ServiceUnreachableError, requests.RequestException) as error:
                broken += 1
                if broken >= STREAM_TRIES:
                    if isinstance(error, ServiceUnreachableError):
                        raise
                    raise ServiceUnreachableError(self.base_url, _reason(error)) from None
            time.sleep(RECONNECT_S)

    def _stream(self, path: str, last_id: str | None) -> Iterator[FeedEvent]:
        headers = {"Accept": EVENT_STREAM}
        if last_id:
            headers["Last-Event-ID"] = last_id
        try:
            response = self.http.get(
                self.base_url + path,
                headers=headers,
                stream=True,
                timeout=(REQUEST_TIMEOUT_S, STREAM_READ_TIMEOUT_S),
            )
        except (requests.ConnectionError, requests.Timeout) as error:
            raise ServiceUnreachableError(self.base_url, _reason(error)) from None
        with response:
            if response.status_code == 429:
                raise StreamRefusedError(_problem(response).get("detail") or "429")
            _raise_for_problem(response)
            if not response.headers.get("Content-Type", "").startswith(EVENT_STREAM):
                raise StreamUnavailableError(
                    f"{path} answered {response.headers.get('Content-Type')}"
                )
            for event in SSEClient(response.iter_content(chunk_size=None)).events():
                yield FeedEvent(event.event, json.loads(event.data), event.id)

    def upload_dataset(self, path: Path, name: str, shards: bool | None = None) -> dict[str, Any]:
        """Upload a data file; `shards` True/False asks to store an image archive as shards or
        not (None: the server decides by its size)."""
        form = {"name": name} if shards is None else {"name": name, "shards": str(shards).lower()}
        with path.open("rb") as stream:
            response = self._call(
                "POST", "/api/v1/datasets", data=form, files={"file": (path.name, stream)}
            )
        return response.json()  # type: ignore[no-any-return]

    def datasets(self) -> list[dict[str, Any]]:
        return self._call("GET", "/api/v1/datasets").json()["datasets"]  # type: ignore[no-any-return]

    def upload_code(
        self, data: bytes, filename: str, name: str | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Upload a code bundle's archive; (the bundle, whether it is new: False when you had
        uploaded these bytes already)."""
        form = {"name": name} if name else {}
        response = self._call("POST", "/api/v1/code", data=form, files={"file": (filename, data)})
        return response.json(), response.status_code == 201

    def code_bundles(self) -> list[dict[str, Any]]:
        return self._call("GET", "/api/v1/code").json()["bundles"]  # type: ignore[no-any-return]

    def code_bundle(self, code_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/code/{code_id}").json()  # type: ignore[no-any-return]

    def pool(self) -> dict[str, Any]:
        return self._call("GET", "/api/v1/pool").json()  # type: ignore[no-any-return]

    def set_priority(self, job_id: str, priority: int) -> dict[str, Any]:
        body = {"priority": priority}
        return self._call("POST", f"/api/v1/jobs/{job_id}/priority", json=body).json()  # type: ignore[no-any-return]

    def drain(self, node: str, draining: bool = True) -> dict[str, Any]:
        action = "drain" if draining else "undrain"
        return self._call("POST", f"/api/v1/admin/nodes/{node}/{action}").json()  # type: ignore[no-any-return]

    def set_quota(
        self, user: str, max_devices: int | None, max_queued_jobs: int | None
    ) -> dict[str, Any]:
        body = {"max_devices": max_devices, "max_queued_jobs": max_queued_jobs}
        return self._call("PUT", f"/api/v1/admin/users/{user}/quota", json=body).json()  # type: ignore[no-any-return]

    def tokens(self, every_user: bool = False) -> list[dict[str, Any]]:
        params = {"all": "true"} if every_user else {}
        return self._call("GET", "/api/v1/tokens", params=params).json()["tokens"]  # type: ignore[no-any-return]

    def create_token(self, name: str, expires_in_days: int | None = None) -> dict[str, Any]:
        """A new token of yours; the answer's `token` is its value, shown this once."""
        body: dict[str, Any] = {"name": name}
        if expires_in_days is not None:
            body["expires_in_days"] = expires_in_days
        return self._call("POST", "/api/v1/tokens", json=body).json()  # type: ignore[no-any-return]

    def revoke_token(self, token_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"/api/v1/tokens/{token_id}").json()  # type: ignore[no-any-return]

    def webhooks(self) -> list[dict[str, Any]]:
        return self._call("GET", "/api/v1/webhooks").json()["webhooks"]  # type: ignore[no-any-return]

    def add_webhook(
        self, url: str, events: list[str] | None = None, job_id: str | None = None
    ) -> dict[str, Any]:
        """A new webhook of yours; the answer's `secret` signs its deliveries, shown this once."""
        body: dict[str, Any] = {"url": url}
        if events:
            body["events"] = events
        if job_id is not None:
            body["job_id"] = job_id
        return self._call("POST", "/api/v1/webhooks", json=body).json()  # type: ignore[no-any-return]

    def remove_webhook(self, webhook_id: str) -> None:
        self._call("DELETE", f"/api/v1/webhooks/{webhook_id}")

    def webhook_deliveries(self, webhook_id: str) -> list[dict[str, Any]]:
        path = f"/api/v1/webhooks/{webhook_id}/deliveries"
        return self._call("GET", path).json()["deliveries"]  # type: ignore[no-any-return]

    def ready(self) -> bool:
        try:
            return self.http.get(self.base_url + "/readyz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def follow(self, job_id: str, interval_s: float = 1.0) -> Iterator[dict[str, Any]]:
        """Yield the job every `interval_s` until it reaches a final state (yielded last)."""
        while True:
            job = self.job(job_id)
            yield job
            if job["state"] in FINAL_STATES:
                return
            time.sleep(interval_s)


def _picked(ids: list[str], tags: list[str]) -> dict[str, Any]:
    """The query that picks jobs for a comparison: whole ids, comma-separated, and tags."""
    params: dict[str, Any] = {"tag": tags} if tags else {}
    if ids:
        params["ids"] = ",".join(ids)
    return params


def _raise_for_problem(response: requests.Response) -> None:
    if response.status_code >= 400:
        raise ApiError(response.status_code, _problem(response))


def _problem(response: requests.Response) -> dict[str, Any]:
    try:
        problem: dict[str, Any] = response.json()
    except ValueError:
        problem = {"detail": response.text[:500]}
    return problem


def _reason(error: requests.RequestException) -> str:
    """The cause in a few words ("[Errno 111] Connection refused"), not urllib3's whole chain."""
    if isinstance(error, requests.Timeout):
        return f"no answer within {REQUEST_TIMEOUT_S} s"
    cause = error.args[0] if error.args else error
    cause = getattr(cause, "reason", None) or cause  # urllib3's MaxRetryError wraps it
    # urllib3 prefixes the connection object: "HTTPConnection(host=..., port=...): ...".
    return re.sub(r"^(?:<[^>]*>|\w+\([^)]*\)): ", "", str(cause))
