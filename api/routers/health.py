from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

router = APIRouter(tags=["health"])


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str]


def _check_database(request: Request) -> None:
    with request.app.state.sessionmaker() as session:
        session.execute(text("SELECT 1"))


class LiveOut(BaseModel):
    status: Literal["alive"]


@router.get("/livez", response_model=LiveOut)
async def livez() -> LiveOut:
    """200 while this process serves requests, without asking PostgreSQL or Temporal (a
    liveness probe: restart the process when it fails; /health says whether it can work)."""
    return LiveOut(status="alive")


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "PostgreSQL or Temporal does not answer"}},
)
async def health(request: Request) -> JSONResponse:
    """200 when PostgreSQL and Temporal both answer; 503 naming what does not."""
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(asyncio.to_thread(_check_database, request), 5)
        checks["postgres"] = "ok"
    except Exception as exc:  # any failure means "not reachable"
        checks["postgres"] = f"unreachable: {type(exc).__name__}"
    try:
        await request.app.state.temporal.check()
        checks["temporal"] = "ok"
    except Exception as exc:  # any failure means "not reachable"
        checks["temporal"] = f"unreachable: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks}, status_code=200 if healthy else 503
    )
