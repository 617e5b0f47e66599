"""Who may open a page, and the CSRF guard every back-office router carries.

The role check is the API's own (api/deps.check_role); what a user may see of a loan, a
wallet or a document is decided by the API routes the pages call (web/platform_api.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from api.deps import check_role
from models.users import Role
from web.session import CSRF_FIELD, WebSession, csrf_ok, load_session

SAFE_METHODS = ("GET", "HEAD")


class LoginRequired(Exception):
    """No live session: the page sends the browser to the login form."""


class CsrfRefused(Exception):
    """A form posted without this session's token, or from another site."""


async def csrf_guard(request: Request) -> None:
    """Every POST to the back office: from this site (Sec-Fetch-Site / Origin, when the
    browser sends them) and with the token of this session or login form."""
    if request.method in SAFE_METHODS:
        return
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise CsrfRefused()
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin.split("://", 1)[-1] != request.headers.get("host", ""):
        raise CsrfRefused()
    form = await request.form()
    # Kept on the request's scope: an error page may offer the same form again (web/app.py).
    request.state.posted_fields = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    token = form.get(CSRF_FIELD)
    if not isinstance(token, str) or not csrf_ok(request.app.state.settings, request, token):
        raise CsrfRefused()


def web_router(prefix: str) -> APIRouter:
    """A back-office router: out of the OpenAPI document, every POST CSRF-checked."""
    return APIRouter(prefix=prefix, include_in_schema=False, dependencies=[Depends(csrf_guard)])


async def current_web_session(request: Request) -> WebSession:
    session = await asyncio.to_thread(load_session, request)
    if session is None:
        raise LoginRequired()
    return session


AnySession = Annotated[WebSession, Depends(current_web_session)]


def pages_for(*roles: Role) -> Callable[[WebSession], Awaitable[WebSession]]:
    async def check(session: AnySession) -> WebSession:
        check_role(session.user, roles)
        return session

    return check


OperatorSession = Annotated[WebSession, Depends(pages_for(Role.operator))]
StaffSession = Annotated[WebSession, Depends(pages_for(Role.operator, Role.compliance))]
InvestorSession = Annotated[WebSession, Depends(pages_for(Role.investor))]
BorrowerSession = Annotated[WebSession, Depends(pages_for(Role.borrower))]
WalletOwnerSession = Annotated[WebSession, Depends(pages_for(Role.borrower, Role.investor))]
