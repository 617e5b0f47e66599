"""RFC 9457 problem+json for every error: one base class (core.errors.PlatformError), one
handler for it, and handlers that give validation and HTTP errors the same shape."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError, RPCStatusCode

from api.deps import dead_caller
from core.errors import PlatformError, ServiceUnavailable

log = logging.getLogger("api")

PROBLEM_JSON = "application/problem+json"

# PostgreSQL down, restarting or refusing connections, every pooled connection busy, or a
# transaction it cut short (a lock or statement timeout, a deadlock): 503, send again. The
# request's transaction rolled back, unless the connection broke during its very commit:
# an Idempotency-Key makes that resend safe too.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError)
# Temporal unreachable, or too slow to answer before the call's deadline.
TEMPORAL_UNAVAILABLE = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)


def problem(
    status: int,
    title: str,
    detail: str,
    type_slug: str,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://errors.crowdlending.example/{type_slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _json_safe(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return str(value)


def _first_line(exc: BaseException) -> str:
    # The driver's own message (a DBAPI error's text adds the SQL and its parameters: not logged).
    return (str(getattr(exc, "orig", None) or exc).splitlines() or [""])[0][:300]


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(PlatformError)
    async def platform_error(request: Request, exc: PlatformError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else getattr(exc, "headers", None)
        return problem(
            exc.status_code,
            exc.title,
            exc.detail,
            exc.type_slug,
            request.url.path,
            headers=headers,
            **_json_safe(exc.extra),
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # A caller no longer live hears 401 before anything about the request's shape, as
        # get_current_user's routes answer them, on the routes that check the caller themselves.
        refusal = await dead_caller(request)
        if refusal is not None:
            return await platform_error(request, refusal)
        errors = []
        for err in exc.errors():
            loc = [str(part) for part in err.get("loc", ())]
            errors.append(
                {
                    "field": ".".join(loc[1:]) if len(loc) > 1 else ".".join(loc),
                    "location": loc[0] if loc else None,
                    "message": err.get("msg"),
                    "type": err.get("type"),
                }
            )
        fields = ", ".join(e["field"] for e in errors if e["field"]) or "the request"
        return problem(
            422, "Invalid request", f"invalid value for {fields}", "invalid-request", request.url.path, errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed", 401: "unauthorized", 403: "forbidden"}.get(
            exc.status_code, "http-error"
        )
        return problem(
            exc.status_code,
            str(exc.detail) if exc.status_code != 404 else "Not found",
            str(exc.detail),
            slug,
            request.url.path,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(DataError)
    async def data_error(request: Request, exc: DataError) -> JSONResponse:
        # Text PostgreSQL cannot hold (a NUL character, in a form field, a path or JSON): the
        # client's data, refused like any invalid value. Any other DataError is a defect.
        message = str(exc.orig)
        if "NUL" in message or "\\u0000" in message or "Unicode escape" in message:
            return problem(
                422, "Invalid request", "text may not contain NUL characters", "invalid-request", request.url.path
            )
        return await unexpected_error(request, exc)

    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning(
            "database unavailable on %s %s: %s: %s",
            request.method,
            request.url.path,
            type(exc).__name__,
            _first_line(exc),
        )
        return await platform_error(
            request,
            ServiceUnavailable(
                "the database could not take the request right now; send again shortly "
                "(a request with an Idempotency-Key is always safe to send again)"
            ),
        )

    for error_class in DATABASE_UNAVAILABLE:
        app.add_exception_handler(error_class, database_unavailable)

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        # The connection broke under the statement (the server restarted, a network cut).
        if exc.connection_invalidated:
            return await database_unavailable(request, exc)
        return await unexpected_error(request, exc)

    @app.exception_handler(RPCError)
    async def temporal_error(request: Request, exc: RPCError) -> JSONResponse:
        if exc.status not in TEMPORAL_UNAVAILABLE:
            return await unexpected_error(request, exc)
        log.warning("Temporal unavailable on %s %s: %s", request.method, request.url.path, exc.message[:300])
        return await platform_error(
            request,
            ServiceUnavailable(
                "the workflow service is not reachable right now; send again shortly "
                "(a request with an Idempotency-Key is always safe to send again)"
            ),
        )

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(
            500,
            "Internal error",
            "an unexpected error occurred; nothing was half-done (the request's database transaction was rolled back)",
            "internal",
            request.url.path,
        )
