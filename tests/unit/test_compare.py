"""Tags, notes and runs side by side through the real API (SQLite and a local folder): labels
set at submission and by PATCH, their checks, the list's filters, the comparison table and
the curves read from each run's metrics.jsonl."""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient

from shared.config import Settings
from shared.db import session_scope
from shared.models import Job
from shared.storage import open_storage
from tests.helpers import RING_SPEC, auth, train_request, user_token
from worker.artifacts import put_artifact


def submit(client: FlaskClient, token: str, name: str = "ring", **extra: Any) -> dict[str, Any]:
    """Submit a ring8 run; `extra` goes in the request (tags, note) or, as `train`, in its
    spec's train section."""
    train = {**RING_SPEC["train"], **extra.pop("train", {})}
    body = {**train_request(name, train=train), **extra}
    response = client.post("/api/v1/jobs", json=body, headers=auth(token))
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def evaluated(settings: Settings, job_id: str, evaluation: dict[str, Any]) -> None:
    with session_scope(settings.database_url) as session:
        session.get(Job, job_id).evaluation = evaluation  # type: ignore[union-attr]


def errors(response: Any) -> list[str]:
    assert response.status_code in (400, 404, 422), (response.status_code, response.data)
    assert response.content_type == "application/problem+json"
    return [e["path"] for e in response.get_json().get("errors") or []]


# --- labels ----------------------------------------------------------------------------------


def test_tags_and_note_are_set_at_submission_and_changed_by_patch(
    client: FlaskClient, alice: str
) -> None:
    job = submit(client, alice, tags=["lr-sweep", "q:1", "lr-sweep"], note="baseline")
    assert job["tags"] == ["lr-sweep", "q:1"] and job["note"] == "baseline"
    plain = submit(client, alice, name="plain")
    assert plain["tags"] == [] and plain["note"] == ""
    url = f"/api/v1/jobs/{job['id']}"
    changed = client.patch(url, json={"tags": ["final"]}, headers=auth(alice))
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["tags"] == ["final"] and changed.get_json()["note"] == "baseline"
    noted = client.patch(url, json={"note": "R1 0.1 helps"}, headers=auth(alice)).get_json()
    assert noted["tags"] == ["final"] and noted["note"] == "R1 0.1 helps"
    assert client.get(url, headers=auth(alice)).get_json()["note"] == "R1 0.1 helps"


def test_bad_labels_are_refused_naming_the_field(client: FlaskClient, alice: str) -> None:
    bad_tag = client.post(
        "/api/v1/jobs", json={**train_request(), "tags": ["ok", "no spaces"]}, headers=auth(alice)
    )
    assert errors(bad_tag) == ["tags.1"] and "no spaces" in bad_tag.get_json()["detail"]
    too_many = client.post(
        "/api/v1/jobs", json={**train_request(), "tags": [f"t{i}" for i in range(21)]},
        headers=auth(alice),
    )  # fmt: skip
    assert errors(too_many) == ["tags"]
    long_note = client.post(
        "/api/v1/jobs", json={**train_request(), "note": "x" * 2001}, headers=auth(alice)
    )
    assert errors(long_note) == ["note"]
    job = submit(client, alice)
    url = f"/api/v1/jobs/{job['id']}"
    assert errors(client.patch(url, json={"tags": ["a" * 41]}, headers=auth(alice))) == ["tags.0"]
    assert errors(client.patch(url, json={"tags": "one"}, headers=auth(alice))) == ["tags"]
    assert errors(client.patch(url, json={}, headers=auth(alice))) == ["(body)"]
    assert errors(client.patch(url, json={"notes": "x"}, headers=auth(alice))) == ["notes"]
    assert errors(client.patch(url, data="tags", headers=auth(alice))) == ["(body)"]
    assert client.get(url, headers=auth(alice)).get_json()["tags"] == []


def test_only_the_owner_or_an_admin_relabels_a_job(
    client: FlaskClient, alice: str, bob: str, settings: Settings
) -> None:
    job = submit(client, alice, tags=["mine"])
    url = f"/api/v1/jobs/{job['id']}"
    refused = client.patch(url, json={"tags": ["bobs"]}, headers=auth(bob))
    assert refused.status_code == 404
    root = user_token(settings, "root", admin=True)
    assert client.patch(url, json={"tags": ["x"]}, headers=auth(root)).status_code == 200
    assert client.get(url, headers=auth(alice)).get_json()["tags"] == ["x"]


def test_the_list_filters_by_every_tag_and_by_text_in_name_or_note(
    client: FlaskClient, alice: str, bob: str
) -> None:
    both = submit(client, alice, "R1 sweep a", tags=["sweep", "r1"])
    one = submit(client, alice, "other", tags=["sweep_2"], note="Cosine DECAY tried")
    submit(client, bob, "bob's", tags=["sweep", "r1"], note="cosine")

    def listed(query: str) -> list[str]:
        answer = client.get(f"/api/v1/jobs?{query}", headers=auth(alice))
        assert answer.status_code == 200, answer.get_json()
        return [job["id"] for job in answer.get_json()["jobs"]]

    assert listed("tag=sweep") == [both["id"]]  # `sweep` is not `sweep_2`, `_` no wildcard
    assert listed("tag=sweep&tag=r1") == [both["id"]]
    assert listed("tag=sweep&tag=nope") == []
    assert listed("tag=sweep_2") == [one["id"]]
    assert listed("q=cosine%20decay") == [one["id"]]  # the note, any case
    assert listed("q=r1%20SWEEP") == [both["id"]]  # the name
    assert listed("q=%25") == []  # LIKE's wildcards are text
    assert errors(client.get("/api/v1/jobs?tag=a%20b", headers=auth(alice))) == ["tag"]
    assert errors(client.get(f"/api/v1/jobs?q={'x' * 201}", headers=auth(alice))) == ["q"]


# --- comparison ------------------------------------------------------------------------------


def test_compare_shows_only_the_spec_fields_that_differ_and_each_run_s_figures(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    first = submit(client, alice, "seed 1", tags=["q"], train={"seed": 1})
    second = submit(client, alice, "seed 2", tags=["q"], train={"seed": 2, "lr": 2e-4})
    evaluated(settings, first["id"], {
        "step": 40, "samples": 10000, "modes_covered": 8, "modes_covered_interval": [7, 8],
        "high_quality": 0.9, "high_quality_interval": [0.89, 0.91], "w1": None,
        "mode_counts": [1, 2], "points": "no file",
    })  # fmt: skip
    ids = f"{first['id']},{second['id']}"
    answer = client.get(f"/api/v1/compare?ids={ids}", headers=auth(alice))
    assert answer.status_code == 200, answer.get_json()
    table = answer.get_json()
    spec_columns = [c["name"] for c in table["columns"] if c["group"] == "spec"]
    assert spec_columns == ["train.lr", "train.seed"]
    figure_columns = [c["name"] for c in table["columns"] if c["group"] == "figures"]
    assert figure_columns == ["step", "samples", "modes_covered", "high_quality", "w1"]
    assert table["same"]["train.steps"] == 40 and table["same"]["data.source"] == "toy:ring8"
    assert "train.seed" not in table["same"]
    row, other = table["rows"]
    assert (row["id"], row["name"], row["tags"]) == (first["id"], "seed 1", ["q"])
    assert row["spec"] == {"train.lr": 1e-3, "train.seed": 1}
    assert other["spec"] == {"train.lr": 2e-4, "train.seed": 2}
    assert row["figures"] == {
        "step": 40, "samples": 10000, "modes_covered": 8, "modes_covered_interval": [7, 8],
        "high_quality": 0.9, "high_quality_interval": [0.89, 0.91], "w1": None,
    }  # fmt: skip
    assert other["figures"] == {}
    assert [job["id"] for job in table["jobs"]] == [first["id"], second["id"]]
    by_tag = client.get("/api/v1/compare?tag=q", headers=auth(alice)).get_json()
    assert [r["id"] for r in by_tag["rows"]] == [second["id"], first["id"]]  # newest first


def test_compare_sees_only_the_caller_s_jobs_and_names_bad_parameters(
    client: FlaskClient, alice: str, bob: str
) -> None:
    mine = submit(client, alice, tags=["shared-tag"])
    theirs = submit(client, bob, tags=["shared-tag"])
    hidden = client.get(f"/api/v1/compare?ids={mine['id']},{theirs['id']}", headers=auth(alice))
    assert hidden.status_code == 404 and hidden.get_json()["jobs"] == [theirs["id"]]
    tagged = client.get("/api/v1/compare?tag=shared-tag", headers=auth(alice)).get_json()
    assert [row["id"] for row in tagged["rows"]] == [mine["id"]]
    assert errors(client.get("/api/v1/compare", headers=auth(alice))) == ["ids"]
    assert errors(client.get("/api/v1/compare?ids=abc", headers=auth(alice))) == ["ids"]
    many = ",".join(f"{i:032x}" for i in range(101))
    assert errors(client.get(f"/api/v1/compare?ids={many}", headers=auth(alice))) == ["ids"]
    no_metric = client.get(f"/api/v1/compare/curves?ids={mine['id']}", headers=auth(alice))
    assert errors(no_metric) == ["metric"]


def test_curves_are_read_from_each_run_s_metrics_jsonl(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    first, second = submit(client, alice, "a"), submit(client, alice, "b")
    lines = [
        {"step": 10, "time": 0.1, "Loss/G/loss": 0.7, "Loss/D/loss": 1.3},
        {"step": 10, "time": 0.1, "eval": {"high_quality": 0.5, "modes_covered": 6}},
        {"step": 20, "time": 0.2, "Loss/G/loss": 0.9, "Loss/D/loss": 1.1},
        {"step": 20, "time": 0.2, "eval": {"high_quality": 0.8, "modes_covered": 8}},
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    put_artifact(
        settings.database_url, open_storage(settings), first["id"], "metrics.jsonl", "metrics", data
    )
    ids = f"{first['id']},{second['id']}"
    answer = client.get(f"/api/v1/compare/curves?ids={ids}&metric=loss_g", headers=auth(alice))
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["metric"] == "Loss/G/loss"
    assert [(c["id"], c["points"]) for c in body["curves"]] == [
        (first["id"], [[10, 0.7], [20, 0.9]]),
        (second["id"], []),
    ]
    figure = client.get(
        f"/api/v1/compare/curves?ids={ids}&metric=high_quality", headers=auth(alice)
    )
    assert figure.get_json()["curves"][0]["points"] == [[10, 0.5], [20, 0.8]]
