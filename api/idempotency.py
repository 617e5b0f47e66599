"""Idempotency-Key on every POST that moves money or starts a loan.

A client that did not hear the answer sends the same request again with the same key:
- same key, same request, the first one finished: the first answer is replayed (status,
  body), marked `Idempotent-Replayed: true`; nothing is done twice;
- same key, another request (method, path or body): 422 idempotency-key-reused;
- same key while the first request is still being processed: 409, with Retry-After.

Keys belong to the user who sent them (two users may use the same key) and are kept
IDEMPOTENCY_KEY_HOURS (at least 24 h). Only a successful (2xx) answer is kept; after any
other the same key may be sent again. After a refusal nothing was done (except where the
refusal itself is the request's answer for good: a loan records it under the request's
business key, so an investment refused for lack of money stays refused; send a new key to
try again). A 503 outcome-unknown means the loan may have taken the request: the same key
learns its real outcome.

Two halves: a route dependency takes the key once the user is known (and answers a repeat),
and an ASGI middleware holds back the response until the answer is stored, so a client
never gets an answer that a repeat could contradict. The routes themselves stay idempotent
by business keys as well (client_key, update ids), so a key whose process died mid-request
(its lease expires) is still safe to take over.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request, Response
from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import CurrentUser
from core.db import unit_of_work
from core.errors import IdempotencyConflict, IdempotencyKeyInFlight
from core.settings import Settings
from models.access import IdempotencyRecord

log = logging.getLogger("api")

IDEMPOTENCY_HEADER = "idempotency-key"

_HOLDER = "idempotency"

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Send the request again safely with the same key (kept 24 h): the first answer "
        "is replayed. Another request with a used key is 422; one still in progress is 409.",
    ),
]


def request_fingerprint(method: str, path: str, query: bytes, body: bytes) -> str:
    """The same request gives the same fingerprint whatever its JSON whitespace or key order."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode() if body else b""
    except (ValueError, UnicodeDecodeError):
        canonical = body
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query, canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


@dataclass(frozen=True)
class Replay:
    """The first answer to a key, as it is sent again."""

    status: int
    content_type: str
    body: bytes


def claim_key(
    factory: sessionmaker[Session],
    user_id: Any,
    key: str,
    fingerprint: str,
    method: str,
    path: str,
    settings: Settings,
    now: datetime,
) -> Replay | None:
    """Takes the key for this request (None: go on), or returns the answer to replay.
    Raises 422 for a key used with another request, 409 while it is still in flight."""
    lease = now + timedelta(seconds=settings.IDEMPOTENCY_LEASE_SECONDS)
    expires = now + timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    with unit_of_work(factory) as session:
        # Keys past their retention go, a few at a time, as new ones come.
        session.execute(
            text(
                "DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys "
                "WHERE expires_at < :now LIMIT 100)"
            ),
            {"now": now},
        )
        fresh = {
            "request_fingerprint": fingerprint,
            "method": method,
            "path": path[:500],
            "state": "in_flight",
            "locked_until": lease,
            "response_status": None,
            "response_content_type": None,
            "response_body": None,
            "created_at": now,
            "expires_at": expires,
        }
        inserted = session.execute(
            insert(IdempotencyRecord)
            .values(user_id=user_id, key=key, **fresh)
            .on_conflict_do_nothing()
            .returning(IdempotencyRecord.key)
        ).first()
        if inserted:
            return None
        record = session.scalars(
            select(IdempotencyRecord)
            .where(IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key)
            .with_for_update()
        ).one()
        if record.expires_at <= now:
            for field, value in fresh.items():
                setattr(record, field, value)
            return None
        if record.request_fingerprint != fingerprint:
            raise IdempotencyConflict(
                "this Idempotency-Key was already used with another request; use a new key for a new request",
                first_used_for=f"{record.method} {record.path}",
            )
        if record.state == "completed":
            return Replay(
                record.response_status or 200,
                record.response_content_type or "application/json",
                record.response_body or b"",
            )
        if record.locked_until > now:
            raise IdempotencyKeyInFlight(
                "a request with this Idempotency-Key is still being processed; ask again in a moment for its answer"
            )
        # The request that held it died without an answer: this one takes over. The route's
        # own business keys make sure nothing it may have done is done twice.
        record.locked_until = lease
        return None


def finish_key(
    factory: sessionmaker[Session], user_id: Any, key: str, status: int, content_type: str, body: bytes
) -> None:
    with unit_of_work(factory) as session:
        if 200 <= status < 300:
            session.execute(
                IdempotencyRecord.__table__.update()
                .where(IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key)
                .values(
                    state="completed", response_status=status, response_content_type=content_type, response_body=body
                )
            )
        else:
            # Refused or failed: nothing was done, the key is free for the same request again.
            session.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.user_id == user_id,
                    IdempotencyRecord.key == key,
                    IdempotencyRecord.state == "in_flight",
                )
            )


def _header(scope: Scope, name: str) -> str | None:
    for raw_name, raw_value in scope.get("headers", []):
        if raw_name.decode("latin-1").lower() == name:
            return raw_value.decode("latin-1")
    return None


class StoredAnswer(Exception):
    """Raised by the guard to answer with the stored first answer (see the handler below)."""

    def __init__(self, replay: Replay) -> None:
        super().__init__("replay")
        self.replay = replay


async def idempotency_guard(
    request: Request, user: CurrentUser, idempotency_key: IdempotencyKeyHeader = None
) -> str | None:
    """The route-side half: takes the key for this user's request (after authentication),
    or answers with the stored answer, 422 or 409. Returns the key for the route's own
    business keys."""
    if idempotency_key is None:  # (its form, 1-200 visible ASCII characters, is checked as a header)
        return None
    holder = request.scope.get("state", {}).get(_HOLDER)
    if holder is None:  # the middleware is not installed: refuse rather than pretend
        raise RuntimeError("IdempotencyMiddleware is not installed")
    body = await request.body()
    fingerprint = request_fingerprint(request.method, request.url.path, request.scope.get("query_string", b""), body)
    factory = request.app.state.sessionmaker
    replay = await asyncio.to_thread(
        claim_key,
        factory,
        user.id,
        idempotency_key,
        fingerprint,
        request.method,
        request.url.path,
        request.app.state.settings,
        datetime.now(UTC),
    )
    if replay is not None:
        raise StoredAnswer(replay)
    holder["claimed"] = (factory, user.id, idempotency_key)
    return idempotency_key


# On every idempotent route: `idempotency_key: IdempotencyGuard`.
IdempotencyGuard = Annotated[str | None, Depends(idempotency_guard)]


def install_idempotency(app: FastAPI) -> None:
    @app.exception_handler(StoredAnswer)
    async def stored_answer(request: Request, exc: StoredAnswer) -> Response:
        return Response(
            exc.replay.body,
            status_code=exc.replay.status,
            media_type=exc.replay.content_type,
            headers={"Idempotent-Replayed": "true"},
        )

    app.add_middleware(IdempotencyMiddleware)


class IdempotencyMiddleware:
    """The response-side half: holds back the answer to a POST that carries an
    Idempotency-Key until, if the guard took the key, the answer is stored."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or _header(scope, IDEMPOTENCY_HEADER) is None:
            await self.app(scope, receive, send)
            return
        holder: dict[str, Any] = {}
        scope.setdefault("state", {})[_HOLDER] = holder
        start: Message | None = None
        chunks: list[bytes] = []

        async def hold_back(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, receive, hold_back)
        except BaseException:
            if "claimed" in holder:
                await asyncio.shield(asyncio.to_thread(finish_key, *holder["claimed"], 500, "", b""))
            raise
        if start is None:
            return
        body = b"".join(chunks)
        if "claimed" in holder:
            status = int(start["status"])
            content_type = next(
                (v.decode("latin-1") for k, v in start.get("headers", []) if k.lower() == b"content-type"),
                "application/json",
            )
            try:
                await asyncio.shield(asyncio.to_thread(finish_key, *holder["claimed"], status, content_type, body))
            except Exception:
                # The work is done and its answer is sent; the key stays in flight until its
                # lease ends, then a repeat is answered by the route's own business keys.
                log.exception("could not store the answer for an Idempotency-Key")
        await send(start)
        await send({"type": "http.response.body", "body": body})
