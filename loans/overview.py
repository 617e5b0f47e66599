"""One loan's money as the back office sees it: each investment's receipts, outstanding
principal, cover and loss; the late fees; the installments by status. Read from the read side
(models/loans.py), which the loan's activities keep in step with the ledger."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain.money import ZERO
from models.loans import Investment, InvestmentInstallment, RepaymentInstallment

INSTALLMENT_STATUSES = ("pending", "overdue", "paid", "written_off")


@dataclass(frozen=True)
class InvestmentLine:
    id: uuid.UUID
    investor_id: uuid.UUID
    amount: Decimal
    status: str
    received_principal: Decimal
    received_interest: Decimal
    received_fees: Decimal
    # What the borrower still owes this investment of its principal: while the loan is paid
    # out and running only. Repaid: nothing. Defaulted: nothing either (it became the
    # reserve fund's cover and the investor's loss); reserved or released: nothing was lent.
    outstanding_principal: Decimal
    loss_amount: Decimal | None
    reserve_cover_amount: Decimal | None
    created_at: datetime


@dataclass(frozen=True)
class LoanMoney:
    investments: list[InvestmentLine]
    late_fees_accrued: Decimal
    late_fees_paid: Decimal
    reserve_covered: Decimal
    losses: Decimal
    installments_by_status: dict[str, int]

    @property
    def late_fees_outstanding(self) -> Decimal:
        """Accrued and not paid (a defaulted loan's are written off with its installments)."""
        return self.late_fees_accrued - self.late_fees_paid


def loan_money(session: Session, loan_id: uuid.UUID) -> LoanMoney:
    # Principal over a loan's life is exactly what each investment lent
    # (domain/investor_shares.py), so what it is still owed is its amount less what it got.
    received = (
        select(
            InvestmentInstallment.investment_id,
            func.sum(InvestmentInstallment.received_principal).label("principal"),
            func.sum(InvestmentInstallment.received_interest).label("interest"),
            func.sum(InvestmentInstallment.received_fee).label("fees"),
        )
        .where(InvestmentInstallment.loan_id == loan_id)
        .group_by(InvestmentInstallment.investment_id)
        .subquery()
    )
    rows = session.execute(
        select(
            Investment,
            func.coalesce(received.c.principal, ZERO),
            func.coalesce(received.c.interest, ZERO),
            func.coalesce(received.c.fees, ZERO),
        )
        .outerjoin(received, received.c.investment_id == Investment.id)
        .where(Investment.loan_id == loan_id)
        .order_by(Investment.created_at, Investment.id)
    ).all()
    investments = [
        InvestmentLine(
            id=investment.id,
            investor_id=investment.investor_id,
            amount=investment.amount,
            status=investment.status,
            received_principal=principal,
            received_interest=interest,
            received_fees=fees,
            # (what it sold on the secondary market is no longer its to receive)
            outstanding_principal=investment.amount - investment.sold_principal - principal
            if investment.status == "active"
            else ZERO,
            loss_amount=investment.loss_amount,
            reserve_cover_amount=investment.reserve_cover_amount,
            created_at=investment.created_at,
        )
        for investment, principal, interest, fees in rows
    ]
    accrued, paid = session.execute(
        select(
            func.coalesce(func.sum(RepaymentInstallment.late_fee_accrued), ZERO),
            func.coalesce(func.sum(RepaymentInstallment.late_fee_paid), ZERO),
        ).where(RepaymentInstallment.loan_id == loan_id)
    ).one()
    by_status = dict.fromkeys(INSTALLMENT_STATUSES, 0)
    for status, count in session.execute(
        select(RepaymentInstallment.status, func.count())
        .where(RepaymentInstallment.loan_id == loan_id)
        .group_by(RepaymentInstallment.status)
    ):
        by_status[status] = count
    return LoanMoney(
        investments=investments,
        late_fees_accrued=accrued,
        late_fees_paid=paid,
        reserve_covered=sum((i.reserve_cover_amount or ZERO for i in investments), ZERO),
        losses=sum((i.loss_amount or ZERO for i in investments), ZERO),
        installments_by_status=by_status,
    )
