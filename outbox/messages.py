"""The outbox's database side: a message is written in the caller's transaction (with the
fact it announces), claimed for delivery under a lease, then marked delivered or put back
with a growing delay. Blocking code: call it from a thread, never inside `async def`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from models.outbox import OutboxMessage

# A claimed message is someone's for this long (a batch at the delivery's RPC timeout fits in
# it); a deliverer that died gives it back by then.
LEASE = timedelta(minutes=2)
MAX_DELAY = timedelta(minutes=1)


@dataclass(frozen=True)
class Claimed:
    id: int
    kind: str
    workflow_id: str
    payload: dict[str, Any]
    attempts: int


def enqueue(session: Session, kind: str, workflow_id: str, payload: dict[str, Any]) -> int:
    message = OutboxMessage(kind=kind, workflow_id=workflow_id, payload=payload)
    session.add(message)
    session.flush()
    return message.id


def claim(session: Session, *, ids: list[int] | None = None, limit: int = 100) -> list[Claimed]:
    """Undelivered messages that are due (or exactly `ids`, if still undelivered and not
    leased), leased to the caller. SKIP LOCKED: two deliverers never claim the same one."""
    now = func.now()  # the database's clock, one for every deliverer
    query = select(OutboxMessage).where(OutboxMessage.delivered_at.is_(None), OutboxMessage.next_attempt_at <= now)
    if ids is not None:
        query = query.where(OutboxMessage.id.in_(ids))
    rows = session.scalars(query.order_by(OutboxMessage.id).limit(limit).with_for_update(skip_locked=True)).all()
    claimed = []
    for row in rows:
        row.next_attempt_at = now + LEASE  # type: ignore[assignment]
        claimed.append(Claimed(row.id, row.kind, row.workflow_id, dict(row.payload), row.attempts))
    return claimed


def mark_delivered(session: Session, message_id: int) -> None:
    session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id).values(delivered_at=func.now()))


def put_back(session: Session, message: Claimed, error: str) -> None:
    """Not delivered this time: again after 1, 2, 4 ... seconds, at most a minute apart."""
    delay = min(timedelta(seconds=2**message.attempts), MAX_DELAY)
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message.id)
        .values(attempts=OutboxMessage.attempts + 1, last_error=error[:2000], next_attempt_at=func.now() + delay)
    )


def undelivered(session: Session) -> int:
    return session.scalar(select(func.count()).where(OutboxMessage.delivered_at.is_(None))) or 0


def undelivered_ids(session: Session, workflow_id: str) -> list[int]:
    return list(
        session.scalars(
            select(OutboxMessage.id).where(
                OutboxMessage.workflow_id == workflow_id, OutboxMessage.delivered_at.is_(None)
            )
        )
    )
