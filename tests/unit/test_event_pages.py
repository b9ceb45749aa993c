"""GET /api/v1/jobs/<id>/events a page at a time, each page naming the next."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from shared.config import Settings
from tests.helpers import auth
from tests.unit.job_factories import queued_job, requeued

PROBLEM = "application/problem+json"


def test_pages_follow_the_cursor_to_every_event_once(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    job_id = requeued(settings, 3)  # 7 events
    url = f"/api/v1/jobs/{job_id}/events"
    whole = client.get(url, headers=auth(alice)).get_json()
    assert len(whole["events"]) == 7 and whole["next_cursor"] is None
    pages, query = [], "?limit=3"
    while query is not None:
        page = client.get(url + query, headers=auth(alice)).get_json()
        pages.append(page["events"])
        cursor = page["next_cursor"]
        query = None if cursor is None else f"?limit=3&cursor={cursor}"
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [event for page in pages for event in page] == whole["events"]


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=1001", "limit=ten", "cursor=-1", "cursor=abc", "cursor=1e3"]
)
def test_a_bad_limit_or_cursor_is_a_problem_naming_it(
    client: FlaskClient, settings: Settings, alice: str, query: str
) -> None:
    response = client.get(
        f"/api/v1/jobs/{queued_job(settings)}/events?{query}", headers=auth(alice)
    )
    assert response.status_code == 400 and response.mimetype == PROBLEM
    assert response.get_json()["errors"][0]["path"] == query.split("=")[0]
