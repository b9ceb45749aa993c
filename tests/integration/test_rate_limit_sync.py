"""Each API process adds its requests to the shared Redis count at most every SYNC_S (near the
limit, at every request): two processes passing a token's limit both refuse it within SYNC_S,
and every request reaches the shared count."""

from __future__ import annotations

import time

import redis

from api.app import create_app
from api.ratelimit import SYNC_S, WINDOW_S, RateCounts
from shared.config import Settings
from tests.helpers import auth, user_token

LIMIT = 10


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_two_processes_refuse_a_token_within_a_sync_of_its_limit(
    settings: Settings, redis_client: redis.Redis
) -> None:
    clock = FakeClock()
    processes = []
    for _ in range(2):  # two API processes: each its own counts, one Redis
        app = create_app(settings.with_(rate_limit_per_minute=LIMIT))
        app.extensions["ganforge.rate_counts"] = RateCounts(clock)
        processes.append(app.test_client())
    first, second = processes
    token = user_token(settings, "busy")
    into_window = time.time() % WINDOW_S
    if into_window > WINDOW_S - 3:  # every request in one counting window
        time.sleep(WINDOW_S - into_window + 0.1)

    def status(client: object) -> int:
        return client.get("/api/v1/jobs", headers=auth(token)).status_code  # type: ignore[attr-defined]

    # Far from the limit a process counts locally: the second does not see the first's 3
    # requests after its first, and admits what the shared count leaves.
    assert [status(first) for _ in range(4)] == [200] * 4
    assert [status(second) for _ in range(8)] == [200] * 8
    # One sync later each adds its own to the shared count and both refuse the token: the
    # overshoot is the first's requests of its last SYNC_S.
    clock.now += SYNC_S
    assert [status(second), status(first), status(second)] == [200, 429, 429]
    (key,) = redis_client.keys(f"ganforge:rate:*:{int(time.time() // WINDOW_S)}")
    assert int(redis_client.get(key)) == 4 + 8 + 3, "every request reached the shared count"
