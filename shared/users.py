"""Users and their bearer tokens.

Tokens are shown once, at creation, and stored as SHA-256 digests.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from shared.loaded_rows import attach_as_loaded, mapped_columns
from shared.models import ApiToken, User, utcnow

# Prefix so a leaked token is recognisable (secret scanners, logs); 32 random bytes after it.
TOKEN_PREFIX = "gf_"
LOCAL_USER = "local"
# A token's last use is written when the stored one is older than this.
LAST_USE_RESOLUTION = timedelta(minutes=1)
# A token and its user by the token's digest, built once: every write through the API looks
# its token up, and building the statement anew cost as much as running it (bench/api.py).
# Their columns in a Core SELECT, made into objects by `attach_as_loaded`: the ORM's loading of
# the two entities cost twice the query itself on every submission (bench/api.py).
_TOKEN_KEYS, _TOKEN_COLUMNS = mapped_columns(ApiToken)
_USER_KEYS, _USER_COLUMNS = mapped_columns(User)
_TOKEN_AND_USER = (
    select(*_TOKEN_COLUMNS, *_USER_COLUMNS)
    .join_from(ApiToken, User, ApiToken.user_id == User.id)
    .where(ApiToken.token_hash == bindparam("digest"))
)


class UserExistsError(ValueError):
    """A user with that name already exists."""


class UnknownUserError(LookupError):
    """No user has that name."""


class PermissionDeniedError(PermissionError):
    """The caller may not do this (an admin may)."""


class TokenNotFoundError(LookupError):
    """No token with that id among those the caller may see."""

    def __init__(self, token_id: str) -> None:
        super().__init__(f"no token {token_id!r} among your tokens")
        self.token_id = token_id


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(session: Session, name: str, *, is_admin: bool = False) -> User:
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise UserExistsError(f"user {name!r} already exists")
    user = User(name=name, is_admin=is_admin)
    session.add(user)
    session.flush()
    return user


def create_token(
    session: Session, user_name: str, label: str = "", expires_at: datetime | None = None
) -> str:
    """A new token for the user; the plain token is returned once and never stored."""
    user = session.scalar(select(User).where(User.name == user_name))
    if user is None:
        raise UnknownUserError(f"no user named {user_name!r}")
    return issue_token(session, user, label, expires_at)[0]


def issue_token(
    session: Session, user: User, label: str = "", expires_at: datetime | None = None
) -> tuple[str, ApiToken]:
    """A new token of `user`: (the plain token, shown once; its stored row)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, token_hash=hash_token(token), label=label)
    row.expires_at = expires_at
    session.add(row)
    session.flush()
    return token, row


@dataclass(frozen=True)
class Authentication:
    """Who a bearer token speaks for, or why it speaks for no one (`refused`)."""

    user: User | None
    token: ApiToken | None
    refused: str = ""
    # True when the token's last use was written: the caller commits then, and only then, so
    # the common request stays one transaction (a commit also hands the pooled connection back,
    # and the next query pays a new checkout and its liveness ping).
    touched: bool = False


def authenticate(session: Session, token: str) -> Authentication:
    """Resolve a bearer token: unknown, revoked and expired tokens are refused, saying which
    (the caller holds the token, so this reveals nothing it does not know); last use is
    recorded at most once a minute."""
    found = _token_and_user(session, hash_token(token))
    if found is None:
        return Authentication(None, None, "the bearer token is not valid")
    row, user = found
    now = utcnow()
    if row.revoked_at is not None:
        return Authentication(None, row, "the bearer token was revoked")
    if row.expires_at is not None and _aware(row.expires_at) <= now:
        return Authentication(None, row, "the bearer token has expired")
    if row.last_used_at is None or now - _aware(row.last_used_at) > LAST_USE_RESOLUTION:
        session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
        return Authentication(user, row, touched=True)
    return Authentication(user, row)


def _token_and_user(session: Session, digest: str) -> tuple[ApiToken, User] | None:
    """The token of `digest` and its user, attached to `session` as if the ORM loaded them."""
    if session.autoflush:
        session.flush()  # as a query through the session would: pending rows are seen
    found = session.connection().execute(_TOKEN_AND_USER, {"digest": digest}).first()
    if found is None:
        return None
    split = len(_TOKEN_KEYS)
    token = attach_as_loaded(session, ApiToken, dict(zip(_TOKEN_KEYS, found[:split], strict=True)))
    user = attach_as_loaded(session, User, dict(zip(_USER_KEYS, found[split:], strict=True)))
    return token, user


def user_for_token(session: Session, token: str) -> User | None:
    return authenticate(session, token).user


def list_tokens(session: Session, user: User | None) -> list[tuple[ApiToken, str]]:
    """(token, owner name) of `user`, or of everyone when None, newest first."""
    query = select(ApiToken, User.name).join(User, ApiToken.user_id == User.id)
    if user is not None:
        query = query.where(ApiToken.user_id == user.id)
    rows = session.execute(query.order_by(ApiToken.created_at.desc(), ApiToken.id))
    return [(token, name) for token, name in rows]


def revoke_token(session: Session, caller: User, token_id: str) -> ApiToken:
    """Revoke one of the caller's tokens (an admin: anyone's); idempotent. Raises
    TokenNotFoundError for a token the caller may not see."""
    row = session.get(ApiToken, token_id)
    if row is None or (row.user_id != caller.id and not caller.is_admin):
        raise TokenNotFoundError(token_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes for timezone-aware columns; they are UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def ensure_local_user(session: Session) -> str | None:
    """Create the embedded mode's local user and return a fresh token, or None if it exists."""
    if session.scalar(select(User).where(User.name == LOCAL_USER)) is not None:
        return None
    create_user(session, LOCAL_USER, is_admin=True)
    return create_token(session, LOCAL_USER, label="embedded")


def set_quota(
    session: Session, user_name: str, max_devices: int | None, max_queued_jobs: int | None
) -> User:
    """Set a user's quotas (None lifts a limit)."""
    user = session.scalar(select(User).where(User.name == user_name))
    if user is None:
        raise UnknownUserError(f"no user named {user_name!r}")
    user.max_devices, user.max_queued_jobs = max_devices, max_queued_jobs
    session.flush()
    return user


def user_names(session: Session, user_ids: Iterable[str]) -> dict[str, str]:
    """The names of these users, by id (one query, whatever the number of ids)."""
    wanted = set(user_ids)
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.name).where(User.id.in_(wanted)))
    return {user_id: name for user_id, name in rows}
