"""Content types the API answers with: every refusal's, and an artifact download's by the
suffix of its name (the one table that the download route answers with, api/jobs.py, and the
OpenAPI document lists, api/openapi.py, so the contract names exactly the types the API
sends). No imports: gunicorn's master reads it too (api/front_errors.py)."""

from __future__ import annotations

# Every refusal, whether the app or gunicorn writes it (RFC 9457).
PROBLEM_JSON = "application/problem+json"
# What a name with no suffix below gets: checkpoints (.pt), latents (.npy), TensorBoard event
# files, exported weights (.safetensors) are bytes for programs, not for a browser to show.
DOWNLOAD = "application/octet-stream"
BY_SUFFIX: dict[str, str] = {
    "png": "image/png",
    "gif": "image/gif",
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "txt": "text/plain; charset=utf-8",
}


def artifact_media_type(name: str) -> str:
    """The Content-Type of artifact `name` (`samples/step-000100.png`, `log.txt`)."""
    filename = name.rsplit("/", 1)[-1]
    suffix = filename.rsplit(".", 1)[-1] if "." in filename else ""
    return BY_SUFFIX.get(suffix, DOWNLOAD)


def artifact_media_types() -> tuple[str, ...]:
    """Every Content-Type a download may have, each once, the fallback last."""
    return tuple(dict.fromkeys([*BY_SUFFIX.values(), DOWNLOAD]))
