"""A short memory, per API process, of the bearer tokens it has just accepted.

A client polling a job sends the same token many times a second; looking it up in PostgreSQL
each time costs a round trip per request. An accepted token is remembered for TOKEN_CACHE_S,
and only reads use the memory (api/auth.py: a request that changes anything, and checks
quotas or rights to do it, always looks its token up):

- a token revoked by another API process (or in the database) is refused by this one within
  TOKEN_CACHE_S; revoked through this process, at once (`forget`);
- expiry is checked against the remembered `expires_at` at every use, so it is exact;
- a user made or unmade admin reads as before for at most TOKEN_CACHE_S;
- the last-use write keeps its one-minute resolution: it happens at the lookups in between.

Refused tokens are never remembered: each try of a bad token is looked up again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from shared.loaded_rows import attach_as_loaded, column_values
from shared.models import ApiToken, User, as_utc, utcnow

# How long an accepted token is taken on trust: the bound on a revocation made elsewhere.
# A second turns a poller's hundreds of lookups a second into one, and is shorter than any
# human reaction to a leaked token.
TOKEN_CACHE_S = 1.0
# Tokens remembered at most; past it the memory starts again (a lab has a few hundred users).
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class _Entry:
    user: dict[str, Any]
    token: dict[str, Any]
    until: float


class TokenCache:
    """Accepted tokens by digest, each for `ttl_s` of `clock` (tests pass their own clock)."""

    def __init__(
        self, ttl_s: float = TOKEN_CACHE_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def remember(self, digest: str, user: User, token: ApiToken) -> None:
        if self.ttl_s <= 0:
            return
        entry = _Entry(column_values(user), column_values(token), self.clock() + self.ttl_s)
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[digest] = entry

    def recall(self, session: Session, digest: str) -> tuple[User, ApiToken] | None:
        """The token's user and row, attached to `session` without a query, or None when not
        remembered (or no longer: stale or expired)."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        expires_at = entry.token["expires_at"]
        if entry.until <= self.clock() or (
            expires_at is not None and as_utc(expires_at) <= utcnow()
        ):
            self.forget(digest)
            return None
        user = attach_as_loaded(session, User, entry.user)
        return user, attach_as_loaded(session, ApiToken, entry.token)

    def forget(self, digest: str) -> None:
        with self._lock:
            self._entries.pop(digest, None)
