"""Each investment's part of each installment, stored: decided once when the loan is paid
out (domain/investor_shares.py), printed in the agreements, and paid by every collection, so
that what an investor receives over the loan's life is their agreement's figures, to the kopek.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from domain.investor_shares import (
    AgreedShare,
    Entitlement,
    Receipt,
    ScheduledAmounts,
    agreed_shares,
    split_installment_payment,
)
from domain.money import ZERO
from models.loan_workflow import InstallmentAmounts
from models.loans import Investment, InvestmentInstallment, RepaymentInstallment

# Investments that hold a part of a paid-out loan.
HOLDING_STATUSES = ("active", "repaid", "defaulted")


def _schedule(session: Session, loan_id: uuid.UUID) -> list[RepaymentInstallment]:
    return list(
        session.scalars(
            select(RepaymentInstallment)
            .where(RepaymentInstallment.loan_id == loan_id)
            .order_by(RepaymentInstallment.payment_num)
        )
    )


def _holders(session: Session, loan_id: uuid.UUID) -> list[Investment]:
    return list(
        session.scalars(
            select(Investment)
            .where(Investment.loan_id == loan_id, Investment.status.in_(HOLDING_STATUSES))
            .order_by(Investment.created_at, Investment.id)
        )
    )


def _decide(schedule: list[RepaymentInstallment], investments: list[Investment]) -> dict[uuid.UUID, list[AgreedShare]]:
    return agreed_shares(
        [ScheduledAmounts(r.payment_num, r.principal, r.interest) for r in schedule],
        {i.id: i.amount for i in investments},
    )


def store_agreed_shares(session: Session, loan_id: uuid.UUID) -> None:
    """Decides and stores every investment's part of every installment (the disbursement
    calls it once the schedule is stored and the investments are active; a retry finds them
    stored; a loan paid out before shares were stored gets them at its next collection).
    Callers hold the loan's row lock (loans/exactly_once.py), so two never store (and
    backfill) at once."""
    if _stored_any(session, loan_id):
        return
    schedule = _schedule(session, loan_id)
    investments = _holders(session, loan_id)
    if not schedule or not investments:
        return
    shares = _decide(schedule, investments)
    rows = [
        {
            "investment_id": investment_id,
            "payment_num": share.payment_num,
            "loan_id": loan_id,
            "principal": share.principal,
            "interest": share.interest,
        }
        for investment_id, parts in shares.items()
        for share in parts
    ]
    # Many rows (investments x installments): sent as one batch of parameter sets, never as
    # one statement (PostgreSQL takes at most 65,535 parameters in a statement).
    session.execute(
        pg_insert(InvestmentInstallment).on_conflict_do_nothing(index_elements=["investment_id", "payment_num"]),
        rows,
    )
    if any(r.paid_principal or r.paid_interest or r.late_fee_paid for r in schedule):
        _backfill_receipts(session, loan_id, schedule)


def _backfill_receipts(session: Session, loan_id: uuid.UUID, schedule: list[RepaymentInstallment]) -> None:
    """A loan paid out before shares were stored: what it has collected so far, split by the
    same rule as if each installment had been paid at once."""
    for row in schedule:
        pay_investments(
            session,
            loan_id,
            [
                InstallmentAmounts(
                    payment_num=row.payment_num,
                    fee=row.late_fee_paid,
                    interest=row.paid_interest,
                    principal=row.paid_principal,
                )
            ],
        )


def agreed_shares_of(session: Session, loan_id: uuid.UUID) -> dict[uuid.UUID, list[AgreedShare]]:
    """Every investment's agreed part of every installment: as stored, or, for a loan paid out
    before they were stored, as the same rule decides them (without writing: readers only read)."""
    rows = _stored(session, loan_id)
    if not rows:
        holders = _holders(session, loan_id)
        schedule = _schedule(session, loan_id)
        return _decide(schedule, holders) if schedule and holders else {}
    shares: dict[uuid.UUID, list[AgreedShare]] = {}
    for row in rows:
        shares.setdefault(row.investment_id, []).append(AgreedShare(row.payment_num, row.principal, row.interest))
    return shares


def _stored_any(session: Session, loan_id: uuid.UUID) -> bool:
    return (
        session.scalars(
            select(InvestmentInstallment.loan_id).where(InvestmentInstallment.loan_id == loan_id).limit(1)
        ).first()
        is not None
    )


def _stored(
    session: Session, loan_id: uuid.UUID, payment_nums: Sequence[int] | None = None, lock: bool = False
) -> list[InvestmentInstallment]:
    """The stored parts, in the order the investments were made (as _holders: the order every
    split breaks its ties in), each investment's by installment."""
    query = (
        select(InvestmentInstallment)
        .join(Investment, Investment.id == InvestmentInstallment.investment_id)
        .where(InvestmentInstallment.loan_id == loan_id)
        .order_by(Investment.created_at, Investment.id, InvestmentInstallment.payment_num)
    )
    if payment_nums is not None:
        query = query.where(InvestmentInstallment.payment_num.in_(payment_nums))
    if lock:
        query = query.with_for_update(of=InvestmentInstallment)
    return list(session.scalars(query))


def pay_investments(
    session: Session, loan_id: uuid.UUID, paid: Sequence[InstallmentAmounts]
) -> dict[uuid.UUID, Receipt]:
    """Splits what a collection paid on each installment among the investments (each by what
    it is still owed under its agreement), records it, and returns each investment's receipt."""
    if not any(p.total for p in paid):
        return {}
    store_agreed_shares(session, loan_id)  # (stored at disbursement; here for older loans)
    by_installment: dict[int, list[InvestmentInstallment]] = {}
    for row in _stored(session, loan_id, [p.payment_num for p in paid], lock=True):
        by_installment.setdefault(row.payment_num, []).append(row)
    totals: dict[uuid.UUID, Receipt] = {}
    for item in paid:
        if not item.total:
            continue
        parts = by_installment[item.payment_num]
        standing = {
            r.investment_id: Entitlement(
                AgreedShare(r.payment_num, r.principal, r.interest), r.received_principal, r.received_interest
            )
            for r in parts
        }
        receipts = split_installment_payment(item.principal, item.interest, item.fee, standing)
        for row in parts:
            receipt = receipts[row.investment_id]
            row.received_principal += receipt.principal
            row.received_interest += receipt.interest
            row.received_fee += receipt.fee
            totals[row.investment_id] = totals.get(row.investment_id, Receipt(ZERO, ZERO, ZERO)) + receipt
    return totals


def outstanding_principal_by_investment(session: Session, loan_id: uuid.UUID) -> dict[uuid.UUID, Decimal]:
    """What each investment is still owed of its principal (its agreed principal not yet received)."""
    store_agreed_shares(session, loan_id)  # (stored at disbursement; here for older loans)
    owed: dict[uuid.UUID, Decimal] = {}
    for row in _stored(session, loan_id):
        owed[row.investment_id] = owed.get(row.investment_id, ZERO) + row.principal - row.received_principal
    return owed
