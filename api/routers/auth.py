"""Logging in (rate limited), refreshing a short-lived access token, logging out."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import select

from api.client_address import client_address
from api.deps import SettingsDep
from api.request_limits import AnonymousPostLimit
from api.schemas.users import RefreshIn, TokenOut
from auth.login_limits import begin_attempt, finish_attempt
from auth.refresh_tokens import IssuedRefreshToken, issue_refresh_token, revoke_token_family, rotate_refresh_token
from core.db import unit_of_work
from core.errors import Unauthorized
from core.security import issue_access_token, verify_password
from models.users import User

router = APIRouter(prefix="/v1/auth", tags=["auth"])

WRONG_CREDENTIALS = "wrong email or password"


def _tokens(settings, user: User, now: datetime, refresh: IssuedRefreshToken) -> TokenOut:
    access, expires_in = issue_access_token(settings, user.id, user.role, user.token_version, now=now)
    return TokenOut(
        access_token=access, expires_in=expires_in, refresh_token=refresh.token, refresh_expires_in=refresh.expires_in
    )


@router.post("/token", response_model=TokenOut, responses={429: {"description": "too many failed logins"}})
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request, settings: SettingsDep
) -> TokenOut:
    """429 with Retry-After while this account's failures from this address (or, from an
    address it never logged in from, its failures from everywhere) call for a wait, or past
    LOGIN_MAX_FAILURES_PER_ADDRESS from one address (auth/login_limits.py)."""
    factory = request.app.state.sessionmaker
    email = form.username.strip().lower()[:320]
    address = client_address(request)
    now = datetime.now(UTC)
    attempt = await asyncio.to_thread(begin_attempt, factory, settings, email, address, now)

    def check() -> TokenOut | None:
        with unit_of_work(factory) as session:
            user = session.scalars(select(User).where(User.email == email)).first()
            # One answer for an unknown email, a wrong password and a blocked account.
            if not verify_password(form.password, user.password_hash if user else None) or user is None:
                return None
            if not user.is_active:
                return None
            return _tokens(settings, user, now, issue_refresh_token(session, settings, user, now))

    try:
        tokens = await asyncio.to_thread(check)
    except BaseException:
        await asyncio.to_thread(finish_attempt, factory, settings, attempt, email, address, False, now)
        raise
    await asyncio.to_thread(finish_attempt, factory, settings, attempt, email, address, tokens is not None, now)
    if tokens is None:
        raise Unauthorized(WRONG_CREDENTIALS)
    return tokens


@router.post("/refresh", response_model=TokenOut, dependencies=[AnonymousPostLimit])
def refresh(body: RefreshIn, request: Request, settings: SettingsDep) -> TokenOut:
    """A new access token and a new refresh token; the one sent is spent. Sending a spent one
    again ends every session that began with the same login."""
    now = datetime.now(UTC)
    with unit_of_work(request.app.state.sessionmaker) as session:
        rotation = rotate_refresh_token(session, settings, body.refresh_token, now)
        tokens = (
            _tokens(settings, rotation.user, now, rotation.refresh)
            if rotation.user is not None and rotation.refresh is not None
            else None
        )
    if tokens is None:  # raised after the commit: a revoked family stays revoked
        raise Unauthorized(rotation.refusal or "the refresh token is not valid")
    return tokens


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    dependencies=[AnonymousPostLimit],
)
def logout(body: RefreshIn, request: Request) -> Response:
    """Ends the session that began with this refresh token's login (the access token still
    lives its few minutes)."""
    with unit_of_work(request.app.state.sessionmaker) as session:
        revoke_token_family(session, body.refresh_token, datetime.now(UTC))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
