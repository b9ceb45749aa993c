"""`ganforge token create / list / revoke` against the running service (gunicorn on
PostgreSQL): a token made from the CLI works, then stops working once revoked (in every API
process within TOKEN_CACHE_S)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import requests

from api.token_cache import TOKEN_CACHE_S
from tests.e2e.conftest import Service

# Past the bound on a revocation: the API process that revoked refuses the token at once, the
# others within TOKEN_CACHE_S (api/token_cache.py); the rest is slack for a loaded machine.
REVOKED_WITHIN_S = TOKEN_CACHE_S + 10


def _cli(service: Service, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **service.settings.to_env(), "GANFORGE_TOKEN": token, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "cli", "token", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_token_made_with_the_cli_works_until_it_is_revoked(service: Service) -> None:
    mine = service.http.headers["Authorization"].removeprefix("Bearer ")
    created = _cli(service, mine, "create", "ci-runner", "--expires-in", "7")
    assert created.returncode == 0, created.stderr
    new_token = created.stdout.strip().splitlines()[-1]
    assert new_token.startswith("gf_")
    url = service.url("/api/v1/jobs")
    headers = {"Authorization": f"Bearer {new_token}"}
    assert requests.get(url, headers=headers, timeout=30).status_code == 200

    listed = _cli(service, mine, "list")
    assert listed.returncode == 0, listed.stderr
    (line,) = [row for row in listed.stdout.splitlines() if "ci-runner" in row]
    (token_id,) = re.findall(r"\b[0-9a-f]{32}\b", line)
    assert "active" in line and new_token not in listed.stdout

    revoked = _cli(service, mine, "revoke", token_id)
    assert revoked.returncode == 0, revoked.stderr
    service.wait_until(
        lambda: requests.get(url, headers=headers, timeout=30).status_code == 401,
        REVOKED_WITHIN_S,
    )
    # One API process refuses it; another may still hold it on trust for TOKEN_CACHE_S after
    # its last lookup (api/token_cache.py), and then refuses it too.
    time.sleep(TOKEN_CACHE_S)
    refused = requests.get(url, headers=headers, timeout=30)
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    again = _cli(service, new_token, "list")
    assert again.returncode != 0 and "revoked" in again.stderr
