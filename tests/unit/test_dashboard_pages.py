"""The dashboard's pages (api/dashboard.py) render, and nothing they serve reaches outside."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from tests.helpers import auth, train_request

PAGES = ("/ui/", "/ui/login", "/ui/pool", "/ui/submit", "/ui/compare", f"/ui/jobs/{'0' * 32}")
ASSET = re.compile(r'(?:src|href)="(/ui/static/[^"]+)"')
EXTERNAL = re.compile(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", re.IGNORECASE)


def _assets(client: FlaskClient) -> dict[str, str]:
    """Every page and every asset a page links, by path: their text."""
    served = {}
    for page in PAGES:
        response = client.get(page)
        assert response.status_code == 200, page
        assert response.mimetype == "text/html"
        served[page] = response.get_data(as_text=True)
    for path in sorted({a for text in list(served.values()) for a in ASSET.findall(text)}):
        response = client.get(path)
        assert response.status_code == 200, path
        served[path] = response.get_data(as_text=True)
        response.close()
    return served


def test_every_page_renders_with_its_scripts_and_styles(client: FlaskClient) -> None:
    served = _assets(client)
    assets = [path for path in served if path.startswith("/ui/static/")]
    assert {p.rsplit("/", 1)[-1] for p in assets} >= {
        "common.js",
        "dashboard.css",
        "jobs.js",
        "job.js",
        "charts.js",
        "pool.js",
        "submit.js",
        "login.js",
        "compare.js",
    }
    assert 'data-job-id="' + "0" * 32 + '"' in served[PAGES[-1]]


def test_nothing_served_names_an_outside_address(client: FlaskClient) -> None:
    for path, text in _assets(client).items():
        assert not EXTERNAL.search(text), (path, EXTERNAL.search(text))


@pytest.mark.parametrize("page", PAGES)
def test_pages_keep_scripts_styles_and_connections_to_this_origin(
    client: FlaskClient, page: str
) -> None:
    policy = client.get(page).headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert "unsafe-inline" not in policy and "http" not in policy


def test_pages_hold_no_data_and_need_no_token(client: FlaskClient, alice: str) -> None:
    """What a page shows comes from the API with the browser's token: the page itself is the
    same shell for anyone, so it can leak nothing."""
    job = client.post("/api/v1/jobs", json=train_request("secret-name"), headers=auth(alice))
    job_id = job.get_json()["id"]
    anonymous = client.get(f"/ui/jobs/{job_id}")
    assert anonymous.status_code == 200
    assert b"secret-name" not in anonymous.data
    assert client.get(f"/ui/jobs/{job_id}", headers=auth(alice)).data == anonymous.data


def test_a_page_for_a_malformed_job_id_is_not_found(client: FlaskClient) -> None:
    assert client.get("/ui/jobs/not-an-id").status_code == 404


def test_the_job_answer_names_its_owner_and_devices(client: FlaskClient, alice: str) -> None:
    """The jobs page shows each job's owner and size from the API's own answer."""
    created = client.post("/api/v1/jobs", json=train_request("mine"), headers=auth(alice))
    assert created.get_json()["owner"] == "alice"
    job_id = created.get_json()["id"]
    listed = client.get("/api/v1/jobs", headers=auth(alice)).get_json()["jobs"]
    assert [(j["owner"], j["devices"]) for j in listed] == [("alice", 1)]
    assert client.get(f"/api/v1/jobs/{job_id}", headers=auth(alice)).get_json()["owner"] == "alice"
