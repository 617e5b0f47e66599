"""The FastAPI application: a thin layer over PostgreSQL and Temporal."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from api.body_limit import BodySizeLimit
from api.idempotency import install_idempotency
from api.openapi import install_openapi
from api.problems import install_problem_handlers
from api.routers import (
    auth,
    auto_invest,
    calculator,
    codec,
    health,
    loans,
    market,
    operator_ledger,
    plans,
    portfolio,
    products,
    records,
    scoring,
    users,
    wallets,
)
from api.temporal import TemporalClientHolder
from core.db import make_engine, session_factory_for
from core.direct_reads import DirectReads
from core.settings import Settings, get_settings
from core.temporal_client import payload_codec
from documents.render_pool import RenderPool
from web.app import install_web

log = logging.getLogger("api")


class CodecOnlyCORS:
    """CORS headers on /codec/... only; every other path answers as if CORS did not exist."""

    def __init__(self, app: ASGIApp, **options: Any) -> None:
        self.app = app
        self.cors = CORSMiddleware(app, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith("/codec/"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


_frozen = False


def _freeze_start_up_objects() -> None:
    """What start-up made (the routes, the ORM's mappers, the schemas) lives as long as the
    process: out of the garbage collector's sight, a full collection no longer walks it while
    requests wait (a p99 tail of 100 ms and more under load, bench/results.md). Once per
    process, after a collection: start-up's garbage is not kept."""
    global _frozen
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True


def create_app(settings: Settings | None = None, temporal: TemporalClientHolder | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(settings.DATABASE_URL, settings.DB_POOL_SIZE)
    reads = DirectReads(settings.DATABASE_URL, settings.DB_READ_POOL_SIZE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Blocking work (sync routes and dependencies, in_db) shares one limit of threads, kept
        # within the pool: a thread never waits for a connection, none is opened per request.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.API_THREADS
        await reads.start()  # (this loop serves the app: its one-statement reads share a pool)
        # Connect to Temporal once; if it is not up yet, the first call that needs it
        # connects (and /health says so meanwhile).
        try:
            await app.state.temporal.get()
        except Exception as exc:
            log.warning("Temporal not reachable at start (%s); will retry on first use", exc)
        _freeze_start_up_objects()
        yield
        await asyncio.to_thread(app.state.render_pool.shutdown)  # no render process outlives the app
        await reads.stop()
        engine.dispose()

    app = FastAPI(
        title="Crowdlending platform API",
        version="1",
        description="Borrowers ask, investors fund, each loan is a durable Temporal workflow. "
        'Amounts are decimal strings ("1234.56"); errors are RFC 9457 problem+json.',
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = session_factory_for(engine, settings.DB_IDLE_IN_TRANSACTION_SECONDS)
    app.state.reads = reads
    app.state.temporal = temporal or TemporalClientHolder(settings)
    # The codec endpoint shows operators histories as Temporal stores them, clear parts too.
    app.state.payload_codec = payload_codec(settings, unsealed="show")
    app.state.render_pool = RenderPool(settings.PDF_RENDER_PROCESSES, settings.PDF_RENDERS_WAITING)
    install_problem_handlers(app)
    codec.redact_codec_links_in_access_log()
    install_idempotency(app)
    # Outside the idempotency middleware, inside CORS (a browser reads the 413).
    app.add_middleware(
        BodySizeLimit, max_bytes=settings.MAX_REQUEST_BODY_BYTES, max_codec_bytes=settings.MAX_CODEC_BODY_BYTES
    )
    install_openapi(app)
    # The Temporal UI runs in operators' browsers and calls the codec endpoint from there:
    # CORS for the codec's paths only (no other origin's script reads the API or the pages).
    app.add_middleware(
        CodecOnlyCORS,
        allow_origins=settings.CODEC_CORS_ORIGINS + (settings.local_ui_origins if settings.LOCAL_DEV_CODEC else []),
        allow_credentials=True,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type", "X-Namespace"],
    )
    for module in (
        health,
        users,
        auth,
        wallets,
        operator_ledger,
        products,
        calculator,
        loans,
        market,
        plans,
        records,
        scoring,
        auto_invest,
        portfolio,
        codec,
    ):
        app.include_router(module.router)
    # The back office's pages (/app/): a client of the routes above, in this process.
    install_web(app)
    return app


def app_factory() -> FastAPI:
    """For uvicorn --factory."""
    return create_app()
