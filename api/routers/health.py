from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter(tags=["health"])


def _check_database(request: Request) -> None:
    with request.app.state.sessionmaker() as session:
        session.execute(text("SELECT 1"))


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """200 when PostgreSQL and Temporal both answer; 503 naming what does not."""
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(asyncio.to_thread(_check_database, request), 5)
        checks["postgres"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        checks["postgres"] = f"unreachable: {type(exc).__name__}"
    try:
        await request.app.state.temporal.check()
        checks["temporal"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["temporal"] = f"unreachable: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if healthy else "unavailable", "checks": checks},
                        status_code=200 if healthy else 503)
