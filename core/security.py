"""Password hashing (Argon2id) and access tokens (JWT)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from core.errors import Unauthorized
from core.settings import Settings

_hasher = PasswordHasher()

# Verified against when the email is unknown, so that a login for an unknown email takes
# as long as a wrong password (no account enumeration by timing).
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class TokenClaims:
    user_id: uuid.UUID
    role: str
    token_version: int


def issue_access_token(settings: Settings, user_id: uuid.UUID, role: str, token_version: int,
                       now: datetime | None = None) -> tuple[str, int]:
    now = now or datetime.now(timezone.utc)
    lifetime = timedelta(minutes=settings.ACCESS_TOKEN_MINUTES)
    claims = {
        "sub": str(user_id),
        "role": role,
        "tv": token_version,
        "typ": "access",
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(claims, settings.JWT_SECRET.get_secret_value(), algorithm=settings.JWT_ALGORITHM)
    return token, int(lifetime.total_seconds())


def decode_access_token(settings: Settings, token: str) -> TokenClaims:
    try:
        claims = jwt.decode(
            token,
            settings.JWT_SECRET.get_secret_value(),
            algorithms=[settings.JWT_ALGORITHM],
            options={"require": ["sub", "exp", "iat", "role", "typ"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the access token has expired; ask for a new one") from None
    except jwt.PyJWTError:
        raise Unauthorized("the access token is not valid") from None
    if claims.get("typ") != "access":
        raise Unauthorized("not an access token")
    try:
        return TokenClaims(user_id=uuid.UUID(claims["sub"]), role=str(claims["role"]),
                           token_version=int(claims.get("tv", 0)))
    except (ValueError, TypeError):
        raise Unauthorized("the access token is not valid") from None


def issue_codec_token(settings: Settings, user_id: uuid.UUID, token_version: int, now: datetime) -> str:
    """A codec link's token: lets the Temporal UI decode payloads as this operator, for a few hours."""
    claims = {"sub": str(user_id), "tv": token_version, "typ": "codec", "iat": int(now.timestamp()),
              "exp": int((now + timedelta(hours=settings.CODEC_LINK_HOURS)).timestamp())}
    return jwt.encode(claims, settings.JWT_SECRET.get_secret_value(), algorithm=settings.JWT_ALGORITHM)


def decode_codec_token(settings: Settings, token: str) -> TokenClaims:
    try:
        claims = jwt.decode(token, settings.JWT_SECRET.get_secret_value(), algorithms=[settings.JWT_ALGORITHM],
                            options={"require": ["sub", "exp", "iat", "typ"]})
        if claims.get("typ") != "codec":
            raise Unauthorized("not a codec link")
        return TokenClaims(user_id=uuid.UUID(claims["sub"]), role="", token_version=int(claims.get("tv", 0)))
    except (jwt.PyJWTError, ValueError, TypeError):
        raise Unauthorized("the codec link is not valid; ask for a new one") from None
