"""The back office's sessions and the CSRF token every form carries.

A session is a login: logging in through the API (its login limits, its known addresses)
issues a refresh-token family, and the session cookie names that family, signed with
JWT_SECRET. The cookie holds no token that works on the API. A session is live while its
user is active with the same token_version (blocking a user ends it), its family is not
revoked (logging out ends it) and it is younger than WEB_SESSION_HOURS.

The cookie is HttpOnly, SameSite=Strict, path /app, Secure outside dev and test.

CSRF: every form posts `csrf_token`, an HMAC of the session's family id (or, on the login
form, of a random nonce kept in a cookie of its own), which another site cannot read; a
POST without the right one is refused before its route runs (web/app.py's router guard).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from fastapi import Request, Response
from sqlalchemy import exists, select

from core.settings import Settings
from models.access import RefreshToken
from models.users import User

SESSION_COOKIE = "cl_session"
LOGIN_NONCE_COOKIE = "cl_login"
COOKIE_PATH = "/app"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class WebSession:
    user: User
    family_id: uuid.UUID
    csrf_token: str

    @property
    def role(self) -> str:
        return self.user.role


@dataclass(frozen=True)
class SessionClaims:
    user_id: uuid.UUID
    token_version: int
    family_id: uuid.UUID


def _secret(settings: Settings) -> str:
    return settings.JWT_SECRET.get_secret_value()


def csrf_token_for(settings: Settings, binding: str) -> str:
    """The token a form bound to this session (or login nonce) must carry."""
    return hmac.new(_secret(settings).encode(), f"csrf|{binding}".encode(), hashlib.sha256).hexdigest()


def session_cookie_value(settings: Settings, user_id: uuid.UUID, token_version: int, family_id: uuid.UUID) -> str:
    now = datetime.now(UTC)
    claims = {
        "typ": "web",
        "sub": str(user_id),
        "tv": token_version,
        "fam": str(family_id),
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(hours=settings.WEB_SESSION_HOURS)).timestamp()),
    }
    return jwt.encode(claims, _secret(settings), algorithm=settings.JWT_ALGORITHM)


def session_claims(settings: Settings, request: Request) -> SessionClaims | None:
    """What the session cookie says, if it is ours, of this kind and not expired (no database)."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    try:
        claims = jwt.decode(
            raw,
            _secret(settings),
            algorithms=[settings.JWT_ALGORITHM],
            options={"require": ["sub", "exp", "iat", "typ", "fam"]},
        )
        if claims.get("typ") != "web":
            return None
        return SessionClaims(uuid.UUID(claims["sub"]), int(claims.get("tv", -1)), uuid.UUID(claims["fam"]))
    except (jwt.PyJWTError, ValueError, TypeError):
        return None


def load_session(request: Request) -> WebSession | None:
    """The live session of this request, or None. Blocking (database): call from a thread."""
    settings: Settings = request.app.state.settings
    claims = session_claims(settings, request)
    if claims is None:
        return None
    now = datetime.now(UTC)
    with request.app.state.sessionmaker() as db:
        user = db.get(User, claims.user_id)
        if user is None or not user.is_active or user.token_version != claims.token_version:
            return None
        family_live = db.scalar(
            select(
                exists().where(
                    RefreshToken.family_id == claims.family_id,
                    RefreshToken.user_id == user.id,
                    RefreshToken.revoked_at.is_(None),
                    RefreshToken.expires_at > now,
                )
            )
        )
        if not family_live:
            return None
        db.expunge(user)
    return WebSession(user=user, family_id=claims.family_id, csrf_token=csrf_token_for(settings, str(claims.family_id)))


def set_cookie(settings: Settings, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=settings.web_cookie_secure,
    )


def start_session(
    settings: Settings, response: Response, user_id: uuid.UUID, token_version: int, family_id: uuid.UUID
) -> None:
    set_cookie(
        settings,
        response,
        SESSION_COOKIE,
        session_cookie_value(settings, user_id, token_version, family_id),
        settings.WEB_SESSION_HOURS * 3600,
    )
    response.delete_cookie(LOGIN_NONCE_COOKIE, path=COOKIE_PATH)


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)


def login_nonce(request: Request) -> tuple[str, bool]:
    """The login form's nonce: the one in its cookie, or a new one (True: set the cookie)."""
    existing = request.cookies.get(LOGIN_NONCE_COOKIE)
    if existing and 20 <= len(existing) <= 100:
        return existing, False
    return secrets.token_urlsafe(32), True


LOGIN_PATH = "/app/login"


def csrf_bindings(settings: Settings, request: Request) -> list[str]:
    """What a posted form's token must be bound to: the login form's nonce on the login form,
    this request's session everywhere else (a token of one never passes for the other)."""
    if request.url.path == LOGIN_PATH:
        nonce = request.cookies.get(LOGIN_NONCE_COOKIE)
        return [f"login|{nonce}"] if nonce else []
    claims = session_claims(settings, request)
    return [str(claims.family_id)] if claims is not None else []


def csrf_ok(settings: Settings, request: Request, token: str | None) -> bool:
    if not token:
        return False
    return any(hmac.compare_digest(token, csrf_token_for(settings, b)) for b in csrf_bindings(settings, request))
