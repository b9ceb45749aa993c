"""The OpenAPI 3.1 document, built from the pydantic models that validate requests
(shared/specs/train.py, api/tokens.py) and describe answers (api/schemas.py); served at
/api/v1/openapi.json with a reading page at /api/v1/docs.

Each operation is one line of `api.operations.OPERATIONS`; a test checks that the list and
the app's routes are the same set, so a route cannot be added without its entry there.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Blueprint, Response
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api import schemas
from api.operations import OPERATIONS, PATH_PARAMETERS, Operation
from shared.specs import SPEC_MODELS, JobRequest

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")

REF = "#/components/schemas/{model}"


@cache
def document() -> dict[str, Any]:
    models: list[type[BaseModel]] = [JobRequest, *SPEC_MODELS.values(), schemas.Problem]
    models += [op.answer for op in OPERATIONS if op.answer is not None]
    models += [op.body for op in OPERATIONS if isinstance(op.body, type)]
    unique = list(dict.fromkeys(models))
    modes = [
        (m, "serialization" if m.__module__ == schemas.__name__ else "validation") for m in unique
    ]
    keys, defs = models_json_schema(modes, ref_template=REF)  # type: ignore[arg-type]
    components = defs.get("$defs", {})
    # A job request's spec is the spec of its `kind`.
    request_schema = components[JobRequest.__name__]
    request_schema["properties"]["spec"] = {
        "oneOf": [{"$ref": REF.format(model=m.__name__)} for m in SPEC_MODELS.values()]
    }
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, keys)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ganforge",
            "version": "1",
            "description": "Train and sample GANs on a shared GPU pool. Errors are RFC 9457 "
            "problem documents naming each bad field.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def _operation(op: Operation, keys: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    def ref(model: type[BaseModel]) -> dict[str, Any]:
        return {"$ref": REF.format(model=model.__name__)}

    problem = {"application/problem+json": {"schema": ref(schemas.Problem)}}
    responses: dict[str, Any] = {}
    text = {"schema": {"type": "string"}}
    if op.answer is not None:
        content = {"application/json": {"schema": ref(op.answer)}}
        responses[str(op.status)] = {
            "description": op.summary,
            "content": {**content, **{media: text for media in op.also}},
        }
    elif op.status == 204:
        responses["204"] = {"description": "done"}
    else:
        content = {_bare(media): {"schema": _body_schema(media)} for media in op.media}
        responses["200"] = {"description": op.summary, "content": content}
    for status in op.extra_statuses:
        if status < 300 and op.answer is not None:  # another success with the same body
            responses[str(status)] = responses[str(op.status)]
        elif status == 302:
            responses["302"] = {"description": "a presigned URL to download from"}
        elif status == 503 and op.answer is not None:
            responses["503"] = {
                "description": "not ready",
                "content": {"application/json": {"schema": ref(op.answer)}},
            }
    responses["default"] = {
        "description": "a problem: 4xx for the request, 503 for an outage",
        "content": problem,
    }
    described = dict(op.path_parameters)
    parameters = [
        described.get(name)
        or {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": PATH_PARAMETERS[name]},
        }
        for name in PATH_PARAMETERS
        if "{" + name + "}" in op.path
    ] + list(op.query)
    operation: dict[str, Any] = {
        "summary": op.summary,
        "operationId": f"{op.method}_{op.path}".replace("/", "_").replace("{", "").replace("}", ""),
        "responses": responses,
    }
    if parameters:
        operation["parameters"] = parameters
    if op.public:
        operation["security"] = []
    if op.body == "multipart":
        operation["requestBody"] = {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "name": {"type": "string", "maxLength": 200},
                        },
                    }
                }
            },
        }
    elif isinstance(op.body, type):
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(op.body)}},
        }
    return operation


def _bare(media: str) -> str:
    """`text/plain; charset=utf-8` -> `text/plain`: content maps are keyed by media type,
    and the parameters say nothing a client chooses by."""
    return media.split(";", 1)[0].strip()


def _body_schema(media: str) -> dict[str, Any]:
    """What a body of `media` holds: any JSON document (an artifact's own format), text (JSON
    lines too), or bytes."""
    main, _, sub = _bare(media).partition("/")
    if sub == "json" or sub.endswith("+json"):
        return {}
    if main == "text" or sub.endswith("ndjson"):
        return {"type": "string"}
    return {"type": "string", "format": "binary"}


@bp.get("/openapi.json")
def openapi_json() -> dict[str, Any]:
    return document()


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ganforge API</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem}
code{background:#f3f3f3;padding:0 .25rem}h2{margin-top:2rem}td{padding:.2rem .6rem;
vertical-align:top}tr:nth-child(odd){background:#fafafa}</style></head><body>
<h1>ganforge API v1</h1>
<p>The machine-readable contract is <a href="openapi.json"><code>openapi.json</code></a>
(OpenAPI 3.1). Send <code>Authorization: Bearer &lt;token&gt;</code>; errors are
<code>application/problem+json</code> with an <code>errors</code> list naming each bad field.</p>
<table id="ops"></table>
<script>
fetch("openapi.json").then(r => r.json()).then(doc => {
  const table = document.getElementById("ops");
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const row = table.insertRow();
      row.insertCell().innerHTML = "<code>" + method.toUpperCase() + "</code>";
      row.insertCell().innerHTML = "<code>" + path + "</code>";
      row.insertCell().textContent = op.summary;
    }
  }
});
</script></body></html>
"""


@bp.get("/docs")
def docs() -> Response:
    """A page listing the operations, drawn from the document itself (no CDN, offline)."""
    return Response(DOCS_PAGE, mimetype="text/html")
