"""Login limits that bound guessing without locking the owner out.

Three counts of failed (or still pending) attempts in the last LOGIN_WINDOW_MINUTES:
- one account from one address: the first LOGIN_FREE_FAILURES are free, then each attempt
  waits twice as long after the last as the one before (LOGIN_FIRST_DELAY_SECONDS, 2x, 4x ...,
  never more than the window). A guesser at one address gets some 14 tries per window (the
  free ones, then about log2(window / first delay) more), well under a thousand a day; the
  owner who mistypes waits seconds.
- one account from every address it has not logged in from (LoginKnownAddress), together:
  the same growing delays after LOGIN_FREE_FAILURES_PER_ACCOUNT. Guessing spread over many
  addresses stays bounded, and applies only to unknown addresses: the owner logging in from
  where they did before is not slowed by an attacker anywhere else.
- one address on any accounts: 429 past LOGIN_MAX_FAILURES_PER_ADDRESS (one address trying
  many accounts).

The address is the peer's, or the client's as named by a trusted proxy (api/client_address.py).
An attempt takes its slot *before* the password is checked (Argon2 is slow on purpose), under
advisory locks on the account and the address: a burst of parallel guesses gets no more
tries than a slow one. A success clears that address's failures for the account and makes
the address known, as the sign-up does for the address it came from; failures elsewhere stay.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from core.db import unit_of_work
from core.errors import TooManyRequests
from core.settings import Settings
from models.access import LoginAttempt, LoginKnownAddress

TOO_MANY = "too many failed logins; try again later"


def _lock(session: Session, *keys: str) -> None:
    # Always in the same order, so two logins never wait on each other's second lock.
    for key in sorted(set(keys)):
        session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))


def growing_delay(failures: int, free: int, first_delay_seconds: int, cap_seconds: float) -> float:
    """How long after the last failure the next attempt must wait: nothing for the first
    `free` failures, then first_delay, doubling with each failure, at most the cap."""
    if failures < free:
        return 0.0
    # (the exponent is capped too: no huge integers from a long attack)
    return float(min(cap_seconds, first_delay_seconds * 2 ** min(failures - free, 40)))


def _refuse_until(session: Session, where: ColumnElement[bool], free: int, settings: Settings, now: datetime) -> None:
    since = now - timedelta(minutes=settings.LOGIN_WINDOW_MINUTES)
    failures, last = session.execute(
        select(func.count(), func.max(LoginAttempt.attempted_at)).where(where, _not_succeeded(since))
    ).one()
    window = settings.LOGIN_WINDOW_MINUTES * 60
    delay = growing_delay(failures, free, settings.LOGIN_FIRST_DELAY_SECONDS, window)
    if delay and last is not None:
        wait = (last + timedelta(seconds=delay) - now).total_seconds()
        if wait > 0:
            raise TooManyRequests(TOO_MANY, retry_after_seconds=max(1, math.ceil(wait)))


def _not_succeeded(since: datetime) -> ColumnElement[bool]:
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
        count, oldest = session.execute(
            select(func.count(), func.min(LoginAttempt.attempted_at)).where(
                LoginAttempt.address == address, _not_succeeded(since)
            )
        ).one()
        if count >= settings.LOGIN_MAX_FAILURES_PER_ADDRESS:
            wait = max(1, math.ceil((oldest + window - now).total_seconds()))
            raise TooManyRequests(TOO_MANY, retry_after_seconds=wait)
        _refuse_until(
            session,
            (LoginAttempt.email == email) & (LoginAttempt.address == address),
            settings.LOGIN_FREE_FAILURES,
            settings,
            now,
        )
        known = select(LoginKnownAddress.address).where(
            LoginKnownAddress.email == email,
            LoginKnownAddress.last_login_at >= now - timedelta(days=settings.LOGIN_KNOWN_ADDRESS_DAYS),
        )
        if address not in session.scalars(known).all():
            _refuse_until(
                session,
                (LoginAttempt.email == email) & LoginAttempt.address.not_in(known),
                settings.LOGIN_FREE_FAILURES_PER_ACCOUNT,
                settings,
                now,
            )
        attempt = LoginAttempt(email=email, address=address, attempted_at=now, succeeded=None)
        session.add(attempt)
        session.flush()
        return attempt.id


def remember_address(session: Session, email: str, address: str, now: datetime) -> None:
    """The account's owner was here (a login, or the sign-up): failures elsewhere do not slow
    them down from this address."""
    session.execute(
        insert(LoginKnownAddress)
        .values(email=email, address=address, last_login_at=now)
        .on_conflict_do_update(
            index_elements=[LoginKnownAddress.email, LoginKnownAddress.address], set_={"last_login_at": now}
        )
    )


def finish_attempt(
    factory: sessionmaker[Session],
    settings: Settings,
    attempt_id: uuid.UUID,
    email: str,
    address: str,
    succeeded: bool,
    now: datetime,
) -> None:
    with unit_of_work(factory) as session:
        session.execute(update(LoginAttempt).where(LoginAttempt.id == attempt_id).values(succeeded=succeeded))
        if succeeded:
            session.execute(
                delete(LoginAttempt).where(
                    LoginAttempt.email == email, LoginAttempt.address == address, LoginAttempt.succeeded.is_(False)
                )
            )
            remember_address(session, email, address, now)
            session.execute(
                delete(LoginKnownAddress).where(
                    LoginKnownAddress.email == email,
                    LoginKnownAddress.last_login_at < now - timedelta(days=settings.LOGIN_KNOWN_ADDRESS_DAYS),
                )
            )
