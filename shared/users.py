"""Users and their bearer tokens.

Tokens are shown once, at creation, and stored as SHA-256 digests.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.models import ApiToken, User

# Prefix so a leaked token is recognisable (secret scanners, logs); 32 random bytes after it.
TOKEN_PREFIX = "gf_"
LOCAL_USER = "local"


class UserExistsError(ValueError):
    """A user with that name already exists."""


class UnknownUserError(LookupError):
    """No user has that name."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(session: Session, name: str, *, is_admin: bool = False) -> User:
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise UserExistsError(f"user {name!r} already exists")
    user = User(name=name, is_admin=is_admin)
    session.add(user)
    session.flush()
    return user


def create_token(session: Session, user_name: str, label: str = "") -> str:
    """A new token for the user; the plain token is returned once and never stored."""
    user = session.scalar(select(User).where(User.name == user_name))
    if user is None:
        raise UnknownUserError(f"no user named {user_name!r}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=hash_token(token), label=label))
    session.flush()
    return token


def user_for_token(session: Session, token: str) -> User | None:
    return session.scalar(
        select(User)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == hash_token(token))
    )


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
