"""The back office's side of money: confirming bank payments, paying out, the trial balance,
the reserve fund."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import OperatorOrCompliance, OperatorUser, SessionDep, TemporalDep, in_db
from api.idempotency import IdempotencyGuard
from api.schemas.wallets import (
    DecisionIn,
    DepositOut,
    OperatorDepositOut,
    OperatorWithdrawalOut,
    RejectionIn,
    ReserveFundOut,
    TrialBalanceOut,
    WithdrawalOut,
)
from ledger.cash import confirm_deposit, pay_withdrawal, reject_deposit, reject_withdrawal
from ledger.reports import reserve_fund, trial_balance
from models.ledger import Deposit, Withdrawal
from models.loan_status import LoanStatus
from models.loans import LoanRequest
from models.plans import PurchasePlan
from models.users import User
from outbox.delivery import deliver
from outbox.messages import enqueue

router = APIRouter(prefix="/v1/operator", tags=["operator"])


def _queue(session: Session, payment: type[Deposit] | type[Withdrawal], status: str, limit: int) -> list[Any]:
    """Deposits or withdrawals in one state, oldest first, each with its owner's email."""
    return list(
        session.execute(
            select(payment, User.email)
            .join(User, User.id == payment.user_id)
            .where(payment.status == status)
            .order_by(payment.created_at)
            .limit(limit)
        ).all()
    )


@router.get("/deposits", response_model=list[OperatorDepositOut])
def list_deposits(
    operator: OperatorUser,
    session: SessionDep,
    status: Literal["pending", "confirmed", "rejected"] = "pending",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[OperatorDepositOut]:
    """Oldest first, each with its owner (the operator matches it with the bank payment)."""
    return [
        OperatorDepositOut(**DepositOut.model_validate(d).model_dump(), user_id=d.user_id, user_email=email)
        for d, email in _queue(session, Deposit, status, limit)
    ]


@router.post("/deposits/{deposit_id}/confirm", response_model=DepositOut)
async def confirm(
    deposit_id: uuid.UUID,
    operator: OperatorUser,
    request: Request,
    temporal: TemporalDep,
    idempotency_key: IdempotencyGuard,
    body: DecisionIn | None = None,
) -> DepositOut:
    """The bank payment arrived: the money is in the wallet. A borrower's running loans are
    told (durably: the outbox), so an overdue installment is collected now, not at the next
    due date."""

    def work(session: Session) -> tuple[DepositOut, list[int]]:
        pending = session.scalar(select(Deposit.status).where(Deposit.id == deposit_id)) == "pending"
        deposit = confirm_deposit(session, deposit_id, operator.id, body.bank_reference if body else None)
        message_ids: list[int] = []
        if pending:  # (a repeated confirmation wakes nobody twice; a duplicate would be harmless)
            # The wake-ups are written with the confirmation (the outbox): delivered below,
            # or by the worker's outbox round if Temporal cannot be reached right now.
            loans = session.execute(
                select(LoanRequest.id, LoanRequest.workflow_id).where(
                    LoanRequest.borrower_id == deposit.user_id, LoanRequest.status == LoanStatus.active
                )
            ).all()
            message_ids = [
                enqueue(
                    session,
                    "funds_arrived",
                    workflow_id,
                    # When the money arrived: late fees stop there, however late the loan
                    # hears of it (a worker outage is not the borrower's cost).
                    {
                        "deposit_id": str(deposit.id),
                        "loan_id": str(loan_id),
                        "at": (deposit.decided_at or datetime.now(UTC)).isoformat(),
                    },
                )
                for loan_id, workflow_id in loans
            ]
            # ... and their plans saving toward an asset (an overdue contribution)
            plans = session.execute(
                select(PurchasePlan.id, PurchasePlan.workflow_id).where(
                    PurchasePlan.borrower_id == deposit.user_id, PurchasePlan.status == "saving"
                )
            ).all()
            message_ids += [
                enqueue(
                    session,
                    "plan_funds_arrived",
                    workflow_id,
                    {"plan_id": str(plan_id), "at": (deposit.decided_at or datetime.now(UTC)).isoformat()},
                )
                for plan_id, workflow_id in plans
            ]
        return DepositOut.model_validate(deposit), message_ids

    deposit, message_ids = await in_db(request, work)
    if message_ids:
        await deliver(temporal.get, request.app.state.sessionmaker, ids=message_ids)
    return deposit


@router.post("/deposits/{deposit_id}/reject", response_model=DepositOut)
def reject(
    deposit_id: uuid.UUID,
    body: RejectionIn,
    operator: OperatorUser,
    session: SessionDep,
    idempotency_key: IdempotencyGuard,
) -> Deposit:
    """The bank payment will not be credited. The reason is required (the depositor reads it
    on their deposit); a repeated rejection keeps the first one."""
    return reject_deposit(session, deposit_id, operator.id, body.reason)


@router.get("/withdrawals", response_model=list[OperatorWithdrawalOut])
def list_withdrawals(
    operator: OperatorUser,
    session: SessionDep,
    status: Literal["pending", "paid", "rejected"] = "pending",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[OperatorWithdrawalOut]:
    """Oldest first, each with its owner."""
    return [
        OperatorWithdrawalOut(**WithdrawalOut.model_validate(w).model_dump(), user_id=w.user_id, user_email=email)
        for w, email in _queue(session, Withdrawal, status, limit)
    ]


@router.post("/withdrawals/{withdrawal_id}/pay", response_model=WithdrawalOut)
def pay(
    withdrawal_id: uuid.UUID,
    operator: OperatorUser,
    session: SessionDep,
    idempotency_key: IdempotencyGuard,
    body: DecisionIn | None = None,
) -> Withdrawal:
    return pay_withdrawal(session, withdrawal_id, operator.id, body.bank_reference if body else None)


@router.post("/withdrawals/{withdrawal_id}/reject", response_model=WithdrawalOut)
def reject_payout(
    withdrawal_id: uuid.UUID,
    body: RejectionIn,
    operator: OperatorUser,
    session: SessionDep,
    idempotency_key: IdempotencyGuard,
) -> Withdrawal:
    return reject_withdrawal(session, withdrawal_id, operator.id, body.reason)


@router.get("/ledger/trial-balance", response_model=TrialBalanceOut)
def get_trial_balance(user: OperatorOrCompliance, session: SessionDep) -> TrialBalanceOut:
    """Every account against its postings; `total` is "0.00" when the books balance."""
    return TrialBalanceOut.model_validate(trial_balance(session).model_dump())


@router.get("/ledger/reserve-fund", response_model=ReserveFundOut)
def get_reserve_fund(
    user: OperatorOrCompliance,
    session: SessionDep,
    currency: Annotated[str, Query(pattern=r"^[A-Z]{3}$")] = "RUB",
) -> ReserveFundOut:
    """What the reserve fund holds, what it has covered on defaults so far, and the principal
    investors still have outstanding in active loans: what it stands behind."""
    return ReserveFundOut.model_validate(reserve_fund(session, currency).model_dump())
