"""Refresh tokens: opaque, stored as their sha256, rotated on every use.

Using one gives a new access token and a new refresh token of the same family and spends
the old one. A spent token presented again means it was copied: the whole family is
revoked, the thief's copy and the owner's newer one alike. Blocking a user (token_version)
or deleting them ends every refresh token they hold."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.security import token_is_live
from core.settings import Settings
from models.access import RefreshToken
from models.users import User


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedRefreshToken:
    token: str
    expires_in: int


def issue_refresh_token(
    session: Session, settings: Settings, user: User, now: datetime, family_id: uuid.UUID | None = None
) -> IssuedRefreshToken:
    token = secrets.token_urlsafe(32)
    lifetime = timedelta(days=settings.REFRESH_TOKEN_DAYS)
    session.add(
        RefreshToken(
            token_hash=_hash(token),
            user_id=user.id,
            family_id=family_id or uuid.uuid4(),
            token_version=user.token_version,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    session.flush()
    return IssuedRefreshToken(token=token, expires_in=int(lifetime.total_seconds()))


@dataclass(frozen=True)
class Rotation:
    user: User | None
    refresh: IssuedRefreshToken | None
    refusal: str | None


def rotate_refresh_token(session: Session, settings: Settings, token: str, now: datetime) -> Rotation:
    """The caller commits even on a refusal: a reuse must leave its family revoked."""
    row = session.scalars(select(RefreshToken).where(RefreshToken.token_hash == _hash(token)).with_for_update()).first()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return Rotation(None, None, "the refresh token is not valid; log in again")
    if row.used_at is not None:
        revoke_family(session, row.family_id, now)
        return Rotation(
            None, None, "this refresh token was already used; every session it began is ended, log in again"
        )
    user = session.get(User, row.user_id)
    if not token_is_live(user, row.token_version):
        revoke_family(session, row.family_id, now)
        return Rotation(None, None, "the refresh token is no longer valid; log in again")
    row.used_at = now
    return Rotation(user, issue_refresh_token(session, settings, user, now, family_id=row.family_id), None)


def revoke_family(session: Session, family_id: uuid.UUID, now: datetime) -> None:
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def family_of(session: Session, token: str) -> uuid.UUID | None:
    """The login (family) a refresh token belongs to, if it is one of ours."""
    return session.scalar(select(RefreshToken.family_id).where(RefreshToken.token_hash == _hash(token)))


def revoke_token_family(session: Session, token: str, now: datetime) -> None:
    """Logout: the family of this token ends. An unknown token changes nothing (no oracle)."""
    family = family_of(session, token)
    if family is not None:
        revoke_family(session, family, now)


def revoke_all_for_user(session: Session, user_id: uuid.UUID, now: datetime) -> None:
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
