"""Password hashing (Argon2id), access tokens and codec links (JWT), and whether a token is still live."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from core.errors import Unauthorized
from core.settings import Settings

if TYPE_CHECKING:
    from models.users import User

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


def issue_access_token(
    settings: Settings, user_id: uuid.UUID, role: str, token_version: int, now: datetime | None = None
) -> tuple[str, int]:
    now = now or datetime.now(UTC)
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


def _decode(
    settings: Settings, token: str, *, typ: str, required: list[str], invalid: str, expired: str, wrong_type: str
) -> TokenClaims:
    """The claims of a token of our own of this type, or 401 with the message that fits."""
    claims, _ = _decode_with_expiry(
        settings, token, typ=typ, required=required, invalid=invalid, expired=expired, wrong_type=wrong_type
    )
    return claims


def _decode_with_expiry(
    settings: Settings, token: str, *, typ: str, required: list[str], invalid: str, expired: str, wrong_type: str
) -> tuple[TokenClaims, int]:
    """_decode, and the token's expiry (seconds since the epoch; every token of ours has one)."""
    try:
        claims = jwt.decode(
            token,
            settings.JWT_SECRET.get_secret_value(),
            algorithms=[settings.JWT_ALGORITHM],
            options={"require": required},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized(expired) from None
    except jwt.PyJWTError:
        raise Unauthorized(invalid) from None
    if claims.get("typ") != typ:
        raise Unauthorized(wrong_type)
    try:
        return TokenClaims(
            user_id=uuid.UUID(claims["sub"]), role=str(claims.get("role", "")), token_version=int(claims.get("tv", 0))
        ), int(claims["exp"])
    except (ValueError, TypeError):
        raise Unauthorized(invalid) from None


# Access tokens whose signature this process has verified, with their expiry: a client sends
# the same token on every call for its lifetime, and checking an HMAC signature and parsing
# the JSON again cost more than a whole read. Keyed by the secret and the algorithm too (a
# rotated secret verifies nothing anew). The expiry is checked on every use, as jwt.decode
# would; whether the user is still live is the caller's check, every time (token_is_live).
_VERIFIED_ACCESS: dict[tuple[str, str, str], tuple[TokenClaims, int]] = {}
_VERIFIED_ACCESS_MAX = 10_000
_ACCESS_EXPIRED = "the access token has expired; ask for a new one"


def _forget_expired_or_all(now: float) -> None:
    """Full: the expired tokens go (the back office mints one per page); if that is not enough,
    all (their next uses verify again). Thread-safe: a copy is walked, pop tolerates a race."""
    for key, (_, expires) in list(_VERIFIED_ACCESS.items()):
        if expires <= now:
            _VERIFIED_ACCESS.pop(key, None)
    if len(_VERIFIED_ACCESS) >= _VERIFIED_ACCESS_MAX * 9 // 10:
        _VERIFIED_ACCESS.clear()


def decode_access_token(settings: Settings, token: str) -> TokenClaims:
    key = (settings.JWT_SECRET.get_secret_value(), settings.JWT_ALGORITHM, token)
    known = _VERIFIED_ACCESS.get(key)
    if known is not None:
        claims, expires = known
        if expires <= datetime.now(UTC).timestamp():  # (jwt.decode's rule, no leeway)
            raise Unauthorized(_ACCESS_EXPIRED)
        return claims
    claims, expires = _decode_with_expiry(
        settings,
        token,
        typ="access",
        required=["sub", "exp", "iat", "role", "typ"],
        invalid="the access token is not valid",
        expired=_ACCESS_EXPIRED,
        wrong_type="not an access token",
    )
    if len(_VERIFIED_ACCESS) >= _VERIFIED_ACCESS_MAX:
        _forget_expired_or_all(datetime.now(UTC).timestamp())
    _VERIFIED_ACCESS[key] = (claims, expires)
    return claims


def token_is_live(user: User | None, token_version: int) -> bool:
    """A deleted or blocked user's tokens, and tokens older than the user's last revocation
    (token_version), are dead: access tokens, refresh tokens and codec links alike."""
    return user is not None and user.is_active and user.token_version == token_version


def issue_codec_token(settings: Settings, user_id: uuid.UUID, token_version: int, now: datetime) -> str:
    """A codec link's token: lets the Temporal UI decode payloads as this operator, for a few hours."""
    claims = {
        "sub": str(user_id),
        "tv": token_version,
        "typ": "codec",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(hours=settings.CODEC_LINK_HOURS)).timestamp()),
    }
    return jwt.encode(claims, settings.JWT_SECRET.get_secret_value(), algorithm=settings.JWT_ALGORITHM)


def decode_codec_token(settings: Settings, token: str) -> TokenClaims:
    invalid = "the codec link is not valid; ask for a new one"
    return _decode(
        settings,
        token,
        typ="codec",
        required=["sub", "exp", "iat", "typ"],
        invalid=invalid,
        expired=invalid,
        wrong_type="not a codec link",
    )
