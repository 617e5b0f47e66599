"""On-time payment points: earned and lost on a borrower's real repayment events on this
platform, at the values of the rules in force when the event happened, once per event."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from domain.scoring import PaymentHistory, points_for
from models.scoring import BorrowerPoints
from models.scoring_rules import BehaviourEvent
from scoring.rules import current_rules


def award_points(
    session: Session, borrower_id: uuid.UUID, loan_id: uuid.UUID, event: BehaviourEvent, event_key: str, note: str
) -> None:
    """Records the event's points in the caller's transaction; the same event_key again
    (a retried activity) records nothing."""
    version, rules = current_rules(session)
    session.execute(
        pg_insert(BorrowerPoints)
        .values(
            borrower_id=borrower_id,
            loan_id=loan_id,
            event_key=event_key,
            event=event,
            points=points_for(rules, event),
            rules_version=version,
            note=note,
        )
        .on_conflict_do_nothing(index_elements=["event_key"])
    )


def payment_history(session: Session, borrower_id: uuid.UUID) -> PaymentHistory:
    rows = session.execute(
        select(BorrowerPoints.event, func.count(), func.coalesce(func.sum(BorrowerPoints.points), 0))
        .where(BorrowerPoints.borrower_id == borrower_id)
        .group_by(BorrowerPoints.event)
    ).all()
    counts = {event: count for event, count, _ in rows}
    return PaymentHistory(
        balance=int(sum(total for _, _, total in rows)),
        on_time_installments=counts.get("on_time_installment", 0),
        late_installments=counts.get("late_installment", 0),
        loans_repaid=counts.get("loan_repaid", 0),
        loans_defaulted=counts.get("loan_defaulted", 0),
    )


def points_entries(session: Session, borrower_id: uuid.UUID, limit: int, offset: int) -> list[BorrowerPoints]:
    return list(
        session.scalars(
            select(BorrowerPoints)
            .where(BorrowerPoints.borrower_id == borrower_id)
            .order_by(BorrowerPoints.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
