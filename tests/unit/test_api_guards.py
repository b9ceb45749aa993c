"""Malformed requests end in a 4xx problem before any query: ids that are not ours, NUL
characters, bodies nested too deep."""

import json

import pytest
from flask.testing import FlaskClient

from api.guards import MAX_JSON_DEPTH, json_depth
from tests.helpers import auth, train_request

PROBLEM = "application/problem+json"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/jobs/abc%00def",
        "/api/v1/jobs/" + "a" * 31 + "%00",
        "/api/v1/jobs/" + "A" * 32,
        "/api/v1/jobs/" + "a" * 33 + "/events",
        "/api/v1/datasets/%00",
    ],
)
def test_ids_that_are_not_ours_are_404_before_any_query(
    client: FlaskClient, alice: str, path: str
) -> None:
    response = client.get(path, headers=auth(alice))
    assert response.status_code == 404
    assert response.mimetype == PROBLEM


def test_a_nul_in_a_query_parameter_or_a_name_is_a_4xx(client: FlaskClient, alice: str) -> None:
    response = client.get("/api/v1/jobs?state=run%00ning", headers=auth(alice))
    assert response.status_code == 400 and response.mimetype == PROBLEM
    assert response.get_json()["errors"][0]["path"] == "state"
    response = client.post("/api/v1/jobs", json=train_request("a\0b"), headers=auth(alice))
    assert response.status_code == 422
    assert response.get_json()["errors"] == [
        {"path": "name", "message": "must not contain a NUL character"}
    ]


def test_a_deeply_nested_body_is_a_400_not_a_recursion_error(
    client: FlaskClient, alice: str
) -> None:
    for depth in (MAX_JSON_DEPTH + 1, 100_000):
        body = "[" * depth + "]" * depth
        response = client.post(
            "/api/v1/jobs", data=body, headers={**auth(alice), "Content-Type": "application/json"}
        )
        assert response.status_code == 400, depth
        assert response.mimetype == PROBLEM
        assert "nested" in response.get_json()["detail"]


def test_json_depth_ignores_brackets_inside_strings() -> None:
    text = json.dumps({"a": ["[[[{{{", {"b": '\\"]]]'}]})
    assert json_depth(text.encode()) == 3
    assert json_depth(b"1") == 0
