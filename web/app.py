"""The web back office under /app/: logging in and out, each role's home, the error pages,
and installing it all into the API's FastAPI app (same process, same accounts)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError, WebSocketRequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.idempotency import StoredAnswer
from auth.refresh_tokens import family_of, revoke_family
from core.db import unit_of_work
from core.security import decode_access_token
from web import borrower_pages, compliance_pages, investor_pages, operator_pages
from web.forms import KEY_FIELD, FormState, read_form, see_other
from web.guards import AnySession, CsrfRefused, LoginRequired, web_router
from web.platform_api import ApiProblem, PlatformApi
from web.rendering import ROLE_HOMES, SECURITY_HEADERS, render
from web.session import (
    LOGIN_NONCE_COOKIE,
    csrf_token_for,
    end_session,
    load_session,
    login_nonce,
    session_claims,
    set_cookie,
    start_session,
)

router = web_router("/app")

STATIC_DIR = Path(__file__).parent / "static"


class BackOfficeHeaders:
    """Pages under /app/: no framing, no scripts, nothing cached by the browser or a proxy."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith("/app"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in SECURITY_HEADERS if n not in names]
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def safe_next(target: str | None, role: str) -> str:
    """Only a back-office path of this site (no //host, no scheme)."""
    if target and target.startswith("/app/") and not target.startswith("//") and "\\" not in target:
        if not target.startswith("/app/login"):
            return target
    return ROLE_HOMES.get(role, "/app/login")


def _login_page(request: Request, form: FormState, status_code: int = 200) -> Response:
    nonce, new = login_nonce(request)
    response = render(
        request,
        "login.html",
        None,
        status_code=status_code,
        csrf_token=csrf_token_for(request.app.state.settings, f"login|{nonce}"),
        form=form,
        next=request.query_params.get("next") or form.value("next"),
    )
    if new:
        set_cookie(request.app.state.settings, response, LOGIN_NONCE_COOKIE, nonce, 3600)
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    session = await asyncio.to_thread(load_session, request)
    if session is not None:
        return RedirectResponse(ROLE_HOMES[session.role], status_code=303)
    return _login_page(request, FormState())


def _family_of(request: Request, refresh_token: str) -> uuid.UUID:
    with unit_of_work(request.app.state.sessionmaker) as db:
        family = family_of(db, refresh_token)
    assert family is not None, "the API just issued this refresh token"
    return family


LOGIN_FIELD_LIMITS = {"email": 320, "password": 200, "next": 500}


def _revoke(request: Request, family_id: uuid.UUID) -> None:
    with unit_of_work(request.app.state.sessionmaker) as db:
        revoke_family(db, family_id, datetime.now(UTC))


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Logs in through the API (its login limits, its known addresses): a new session each
    time, so a session id planted before login is worth nothing; the login this browser held
    before, if any, ends."""
    values = await read_form(request)
    email, next_page = values.get("email", ""), values.get("next", "")
    password = str((await request.form()).get("password") or "")  # (not trimmed: a password is as typed)
    form = FormState(values={"email": email, "next": next_page})
    for name, value in (("email", email), ("password", password)):
        if not value:
            form.errors[name] = f"enter your {name}"
        elif len(value) > LOGIN_FIELD_LIMITS[name]:
            form.errors[name] = f"at most {LOGIN_FIELD_LIMITS[name]} characters"
    if form.errors:
        return _login_page(request, form, 422)
    try:
        answer = await PlatformApi(request, None).call(
            "POST", "/v1/auth/token", data={"username": email, "password": password}
        )
    except ApiProblem as problem:
        form.message = problem.detail
        if problem.status == 429:
            form.message = f"Too many failed logins: wait {problem.retry_after or 'a while'} seconds and try again."
        passed_on = problem.status in (401, 429) or problem.status >= 500
        return _login_page(request, form, problem.status if passed_on else 400)
    tokens = answer.json()
    settings = request.app.state.settings
    claims = decode_access_token(settings, tokens["access_token"])
    family_id = await asyncio.to_thread(_family_of, request, tokens["refresh_token"])
    before = session_claims(settings, request)
    if before is not None and before.family_id != family_id:
        await asyncio.to_thread(_revoke, request, before.family_id)
    response = RedirectResponse(safe_next(next_page[: LOGIN_FIELD_LIMITS["next"]], claims.role), status_code=303)
    start_session(settings, response, claims.user_id, claims.token_version, family_id)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Ends this session's login for good (its family is revoked), whatever else holds the cookie."""
    claims = session_claims(request.app.state.settings, request)
    if claims is not None:
        await asyncio.to_thread(_revoke, request, claims.family_id)
    response = see_other("/app/login", "logged-out")
    end_session(response)
    return response


@router.get("/", response_class=HTMLResponse)
@router.get("", response_class=HTMLResponse, include_in_schema=False)
async def home(session: AnySession) -> Response:
    return RedirectResponse(ROLE_HOMES[session.role], status_code=303)


@router.get("/documents/{document_id}")
async def document(document_id: uuid.UUID, request: Request, session: AnySession) -> Response:
    """A document, if the API lets this user read it (the same rule as GET /v1/documents/{id})."""
    response = await PlatformApi(request, session.user).call("GET", f"/v1/documents/{document_id}")
    return Response(
        response.content,
        media_type=response.headers.get("content-type", "application/pdf"),
        headers={"Content-Disposition": response.headers.get("content-disposition", "attachment")},
    )


def _error_page(
    request: Request, status_code: int, title: str, detail: str, resend: list[tuple[str, str]] | None = None
) -> Response:
    try:
        session = load_session(request) if status_code != 401 else None
    except Exception:  # the database is what failed: the page is still shown, without the menu
        session = None
    return render(
        request,
        "error.html",
        session,
        status_code=status_code,
        title=title,
        detail=detail,
        resend=resend,
        resend_action=request.url.path,
    )


def _detail_of(answer: Response) -> str:
    try:
        detail = json.loads(bytes(answer.body)).get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail or "Something went wrong on our side; nothing was half-done.")


ERROR_TITLES = {
    403: "Not for your role",
    404: "Not found",
    405: "Not allowed",
    409: "Not possible now",
    422: "Invalid request",
    500: "Something went wrong",
    503: "Try again shortly",
}


def _resendable(request: Request, status_code: int) -> list[tuple[str, str]] | None:
    """A form whose outcome is unknown (a 5xx) comes back as it was sent, its Idempotency-Key
    and all: sending it again does it at most once and learns what happened."""
    fields: list[tuple[str, str]] = getattr(request.state, "posted_fields", None) or []
    if request.method != "POST" or status_code < 500:
        return None
    return fields if any(k == KEY_FIELD for k, _ in fields) else None


def install_web(app: FastAPI) -> None:
    """The back office's routes, its static CSS and its HTML error pages (the API's own
    paths keep their problem+json)."""
    app.mount("/app/static", StaticFiles(directory=str(STATIC_DIR)), name="web-static")
    for module in (operator_pages, compliance_pages, investor_pages, borrower_pages):
        app.include_router(module.router)
    app.include_router(router)

    @app.get("/app/{rest:path}", include_in_schema=False)
    async def unknown_page(request: Request, rest: str) -> Response:
        return await asyncio.to_thread(_error_page, request, 404, "Not found", "There is no such page.")

    def for_pages(exc_class: type[Exception]) -> None:
        """The API's handler for this error, with HTML for the pages: the API decides what the
        error is (its status and words: a database outage is a 503, a bug a 500, logged once),
        the page shows it."""
        api_handler = app.exception_handlers.get(exc_class)

        async def handler(request: Request, exc: Exception) -> Response:
            if not request.url.path.startswith("/app"):
                if api_handler is None:
                    raise exc
                return await api_handler(request, exc)  # type: ignore[no-any-return]
            if isinstance(exc, ApiProblem):
                status_code, detail = exc.status, exc.detail
            elif isinstance(exc, RequestValidationError):
                # an id in the path that is not an id: no such page; anything else: a bad form
                in_path = any(e.get("loc", ("",))[0] == "path" for e in exc.errors())
                status_code, detail = (404, "") if in_path else (422, "Some of what was sent is not valid.")
            elif api_handler is not None:
                answer = await api_handler(request, exc)
                status_code, detail = answer.status_code, _detail_of(answer)
            else:
                raise exc
            if status_code == 401:
                return RedirectResponse(f"/app/login?next={quote(request.url.path)}", status_code=303)
            if status_code == 404:
                detail = "There is no such page, or it is not yours to see."
            resend = _resendable(request, status_code)
            return await asyncio.to_thread(
                _error_page, request, status_code, ERROR_TITLES.get(status_code, "Error"), detail, resend
            )

        app.add_exception_handler(exc_class, handler)

    # Every error the API has a handler for (the database's, Temporal's, its own, any other),
    # and the API's refusals as the pages receive them.
    for exc_class in [*app.exception_handlers, ApiProblem]:
        if isinstance(exc_class, type) and exc_class not in (StoredAnswer, WebSocketRequestValidationError):
            for_pages(exc_class)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        response = RedirectResponse(f"/app/login?next={quote(request.url.path)}", status_code=303)
        end_session(response)
        return response

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, exc: CsrfRefused) -> Response:
        return await asyncio.to_thread(
            _error_page,
            request,
            403,
            "Form refused",
            "This form did not come from this site or its session has ended: reload the page and send it again.",
        )

    app.add_middleware(BackOfficeHeaders)
