"""Per-address limits on the calls that need no token: sign-ups (SIGNUPS_PER_ADDRESS_PER_HOUR)
and every other anonymous POST (ANONYMOUS_POSTS_PER_ADDRESS_PER_MINUTE: refresh, logout, the
calculator). Logging in has limits of its own (auth/login_limits.py); codec links are signed
operator credentials, used by the Temporal UI many times a page.

Fixed windows counted in PostgreSQL, so every API process shares them: one statement a request
(INSERT ... ON CONFLICT DO UPDATE SET count = count + 1 RETURNING count). A request past the
limit counts too, and is answered 429 with Retry-After (the seconds left in its window). The
first request of a new window deletes a few rows of ended ones. The client's address is
api/client_address.py's (proxy headers only from TRUSTED_PROXIES)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import Depends, Request
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from api.client_address import client_address
from core.db import unit_of_work
from core.errors import TooManyRequests
from core.settings import Settings
from models.request_limits import RequestCount


@dataclass(frozen=True)
class Limit:
    scope: str
    window: timedelta
    allowed: Callable[[Settings], int]
    refusal: str


SIGNUPS = Limit(
    "signup",
    timedelta(hours=1),
    lambda settings: settings.SIGNUPS_PER_ADDRESS_PER_HOUR,
    "too many sign-ups from this address; try again later",
)
ANONYMOUS_POSTS = Limit(
    "anonymous-post",
    timedelta(minutes=1),
    lambda settings: settings.ANONYMOUS_POSTS_PER_ADDRESS_PER_MINUTE,
    "too many requests from this address; try again later",
)


def window_of(now: datetime, window: timedelta) -> tuple[datetime, datetime]:
    """The fixed window `now` falls in: [start, end), aligned on the Unix epoch."""
    seconds = int(window.total_seconds())
    start = datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, UTC)
    return start, start + window


def count_request(factory: sessionmaker[Session], limit: Limit, address: str, allowed: int, now: datetime) -> int:
    """Counts this request in its window and returns the count; 429 past `allowed`."""
    start, end = window_of(now, limit.window)
    with unit_of_work(factory) as session:
        count = session.execute(
            insert(RequestCount)
            .values(scope=limit.scope, address=address, window_start=start, window_end=end, count=1)
            .on_conflict_do_update(
                index_elements=[RequestCount.scope, RequestCount.address, RequestCount.window_start],
                set_={"count": RequestCount.count + 1},
            )
            .returning(RequestCount.count)
        ).scalar_one()
        if count == 1:
            # Ended windows go, a few at a time, as new ones open (rows another process is
            # deleting are skipped, not waited for).
            session.execute(
                text(
                    "DELETE FROM request_counts WHERE ctid IN (SELECT ctid FROM request_counts "
                    "WHERE window_end <= :now LIMIT 100 FOR UPDATE SKIP LOCKED)"
                ),
                {"now": now},
            )
    if count > allowed:
        raise TooManyRequests(limit.refusal, retry_after_seconds=max(1, math.ceil((end - now).total_seconds())))
    return count


def limits_clock() -> datetime:
    """The time the limits count in (looked up on each request, so tests can hold it in the
    middle of a window: a window that ends mid-test would start the count over)."""
    return datetime.now(UTC)


def _limited(limit: Limit) -> Callable[[Request], None]:
    def check(request: Request) -> None:
        settings: Settings = request.app.state.settings
        count_request(
            request.app.state.sessionmaker, limit, client_address(request), limit.allowed(settings), limits_clock()
        )

    check.__name__ = f"limit_{limit.scope.replace('-', '_')}"
    return check


limit_signups = _limited(SIGNUPS)
limit_anonymous_posts = _limited(ANONYMOUS_POSTS)

# For a route's `dependencies=[...]`: run before its body is used, in a transaction of their own.
SignupLimit = Depends(limit_signups)
AnonymousPostLimit = Depends(limit_anonymous_posts)
