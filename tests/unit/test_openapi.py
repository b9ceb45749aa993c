"""The published contract covers every route, and what the API answers matches it."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema_rs import validator_for

from api.media_types import artifact_media_type, artifact_media_types
from api.openapi import document
from shared.storage import keys
from tests.helpers import auth, train_request

UNDOCUMENTED = {"/api/v1/openapi.json", "/api/v1/docs", "/static/<path:filename>"}
# The dashboard's pages (api/dashboard.py) are HTML for people, not part of the JSON API.
DASHBOARD = "/ui/"


def test_every_route_is_in_the_document_and_nothing_else(app: Flask) -> None:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule in UNDOCUMENTED or rule.rule.startswith(DASHBOARD):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        routes |= {(m.lower(), path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(m, p) for p, ops in document()["paths"].items() for m in ops}
    assert routes == documented


def test_the_document_is_served_with_a_reading_page(client: FlaskClient) -> None:
    served = client.get("/api/v1/openapi.json")
    assert served.status_code == 200 and served.get_json()["openapi"] == "3.1.0"
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and b"openapi.json" in page.data


def _schema(name: str) -> dict:
    doc = document()
    return {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}


def test_answers_match_their_schemas(client: FlaskClient, alice: str) -> None:
    job = client.post("/api/v1/jobs", json=train_request("c"), headers=auth(alice))
    job_schema = {**_schema("Job")}
    validator_for(job_schema).validate(job.get_json())
    page = client.get("/api/v1/jobs", headers=auth(alice)).get_json()
    validator_for(_schema("JobPage")).validate(page)
    events = client.get(f"/api/v1/jobs/{job.get_json()['id']}/events", headers=auth(alice))
    validator_for(_schema("EventList")).validate(events.get_json())
    token = client.post("/api/v1/tokens", json={"name": "t"}, headers=auth(alice)).get_json()
    validator_for(_schema("CreatedToken")).validate(token)
    problem = client.post("/api/v1/jobs", json={"kind": "x"}, headers=auth(alice)).get_json()
    validator_for(_schema("Problem")).validate(problem)


ARTIFACT_ROUTE = "/api/v1/jobs/{job_id}/artifacts/{name}"


def test_the_artifact_route_lists_the_content_types_the_api_sends() -> None:
    content = document()["paths"][ARTIFACT_ROUTE]["get"]["responses"]["200"]["content"]
    sent = {media.split(";")[0] for media in artifact_media_types()}
    assert set(content) == sent
    assert {"image/png", "image/gif", "application/json", "text/plain"} <= sent
    assert content["application/json"]["schema"] == {}, "any JSON document, not a string"


def test_the_artifact_name_parameter_takes_every_name_the_worker_builds() -> None:
    (parameter,) = [
        p for p in document()["paths"][ARTIFACT_ROUTE]["get"]["parameters"] if p["name"] == "name"
    ]
    pattern = re.compile(parameter["schema"]["pattern"])
    built = [
        keys.checkpoint_name(100),
        keys.samples_name(100),
        keys.evaluation_name(100),
        keys.latents_name(100),
        keys.tensorboard_name(2),
        keys.METRICS_NAME,
        keys.LOG_NAME,
        keys.TIMELINE_NAME,
        keys.GENERATOR_TORCHSCRIPT_NAME,
    ]
    assert all(pattern.fullmatch(name) for name in built), built
    assert "/" in parameter["example"] and pattern.fullmatch(parameter["example"])
    assert not pattern.fullmatch("a/b/c.png") and not pattern.fullmatch("/etc/passwd")


@pytest.mark.parametrize(
    ("name", "media"),
    [
        ("samples/step-000100.png", "image/png"),
        ("timeline.gif", "image/gif"),
        ("neighbourhood.json", "application/json"),
        ("metrics.jsonl", "application/x-ndjson"),
        ("log.txt", "text/plain; charset=utf-8"),
        ("samples/step-000100-latents.npy", "application/octet-stream"),
        ("tensorboard/events.out.tfevents.attempt-1", "application/octet-stream"),
        ("samples/png", "application/octet-stream"),
    ],
)
def test_an_artifact_is_typed_by_its_name_s_suffix(name: str, media: str) -> None:
    assert artifact_media_type(name) == media
