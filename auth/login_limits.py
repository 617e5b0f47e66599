"""Login rate limits: failed attempts in a sliding window, per account and per address.

An attempt takes its slot *before* the password is checked (Argon2 is slow on purpose), under
advisory locks on the account and the address: a burst of parallel guesses gets no more
tries than a slow one. A success clears the account's failures; failures from an address
stay, so one address cannot guess at many accounts."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.db import unit_of_work
from core.errors import TooManyRequests
from core.settings import Settings
from models.access import LoginAttempt


def _lock(session: Session, *keys: str) -> None:
    # Always in the same order, so two logins never wait on each other's second lock.
    for key in sorted(set(keys)):
        session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))


def _not_succeeded(since: datetime):
    return (LoginAttempt.attempted_at >= since) & LoginAttempt.succeeded.is_not(True)


def begin_attempt(
    factory: sessionmaker[Session], settings: Settings, email: str, address: str, now: datetime
) -> uuid.UUID:
    """Counts this attempt, or refuses it with 429 and how long to wait."""
    window = timedelta(minutes=settings.LOGIN_WINDOW_MINUTES)
    since = now - window
    with unit_of_work(factory) as session:
        _lock(session, f"login-account:{email}", f"login-address:{address}")
        session.execute(
            delete(LoginAttempt).where(
                LoginAttempt.attempted_at < since, or_(LoginAttempt.email == email, LoginAttempt.address == address)
            )
        )
        for column, value, limit in (
            (LoginAttempt.email, email, settings.LOGIN_MAX_FAILURES_PER_ACCOUNT),
            (LoginAttempt.address, address, settings.LOGIN_MAX_FAILURES_PER_ADDRESS),
        ):
            count, oldest = session.execute(
                select(func.count(), func.min(LoginAttempt.attempted_at)).where(column == value, _not_succeeded(since))
            ).one()
            if count >= limit:
                wait = max(1, math.ceil((oldest + window - now).total_seconds()))
                raise TooManyRequests("too many failed logins; try again later", retry_after_seconds=wait)
        attempt = LoginAttempt(email=email, address=address, attempted_at=now, succeeded=None)
        session.add(attempt)
        session.flush()
        return attempt.id


def finish_attempt(factory: sessionmaker[Session], attempt_id: uuid.UUID, email: str, succeeded: bool) -> None:
    with unit_of_work(factory) as session:
        session.execute(update(LoginAttempt).where(LoginAttempt.id == attempt_id).values(succeeded=succeeded))
        if succeeded:
            session.execute(delete(LoginAttempt).where(LoginAttempt.email == email, LoginAttempt.succeeded.is_(False)))
