"""Bearer-token authentication: every /api/ request names its user; jobs are theirs alone."""

from __future__ import annotations

from flask import g, request

from api.problems import ApiProblem
from api.ratelimit import check_rate
from api.state import db_session, token_cache
from shared.models import User
from shared.users import authenticate, hash_token

READ_METHODS = frozenset({"GET", "HEAD"})


def require_user() -> None:
    """before_request hook of the API blueprints: resolve the token to `g.user` or answer 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiProblem(
            401,
            "Unauthorized",
            "send 'Authorization: Bearer <token>'; an admin creates tokens with "
            "'ganforge admin create-token'",
        )
    session, digest, cache = db_session(), hash_token(token.strip()), token_cache()
    # Reads may go on a token accepted within the last TOKEN_CACHE_S; a request that changes
    # anything (and checks quotas or rights to do it) always looks the token up.
    reading = request.method in READ_METHODS
    remembered = cache.recall(session, digest) if reading else None
    if remembered is not None:
        g.user, g.token = remembered
    else:
        found = authenticate(session, token.strip())
        if found.user is None or found.token is None:
            raise ApiProblem(401, "Unauthorized", found.refused)
        if found.touched:
            session.commit()  # its last use (at most once a minute); else no commit
        cache.remember(digest, found.user, found.token)
        g.user, g.token = found.user, found.token
    check_rate()


def current_user() -> User:
    return g.user  # type: ignore[no-any-return]
