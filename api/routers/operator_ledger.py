"""The back office's side of money: confirming bank payments, paying out, the trial balance."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlalchemy import select

from api.deps import OperatorOrCompliance, OperatorUser, SessionDep
from api.schemas.wallets import DecisionIn, DepositOut, RejectionIn, TrialBalanceOut, WithdrawalOut
from ledger.cash import confirm_deposit, pay_withdrawal, reject_deposit, reject_withdrawal
from ledger.reports import trial_balance
from models.ledger import Deposit, Withdrawal

router = APIRouter(prefix="/v1/operator", tags=["operator"])


@router.get("/deposits", response_model=list[DepositOut])
def list_deposits(operator: OperatorUser, session: SessionDep,
                  status: Literal["pending", "confirmed", "rejected"] = "pending",
                  limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[Deposit]:
    return list(session.scalars(select(Deposit).where(Deposit.status == status)
                                .order_by(Deposit.created_at).limit(limit)))


@router.post("/deposits/{deposit_id}/confirm", response_model=DepositOut)
def confirm(deposit_id: uuid.UUID, operator: OperatorUser, session: SessionDep,
            body: DecisionIn | None = None) -> Deposit:
    return confirm_deposit(session, deposit_id, operator.id, body.bank_reference if body else None)


@router.post("/deposits/{deposit_id}/reject", response_model=DepositOut)
def reject(deposit_id: uuid.UUID, operator: OperatorUser, session: SessionDep) -> Deposit:
    return reject_deposit(session, deposit_id, operator.id)


@router.get("/withdrawals", response_model=list[WithdrawalOut])
def list_withdrawals(operator: OperatorUser, session: SessionDep,
                     status: Literal["pending", "paid", "rejected"] = "pending",
                     limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[Withdrawal]:
    return list(session.scalars(select(Withdrawal).where(Withdrawal.status == status)
                                .order_by(Withdrawal.created_at).limit(limit)))


@router.post("/withdrawals/{withdrawal_id}/pay", response_model=WithdrawalOut)
def pay(withdrawal_id: uuid.UUID, operator: OperatorUser, session: SessionDep,
        body: DecisionIn | None = None) -> Withdrawal:
    return pay_withdrawal(session, withdrawal_id, operator.id, body.bank_reference if body else None)


@router.post("/withdrawals/{withdrawal_id}/reject", response_model=WithdrawalOut)
def reject_payout(withdrawal_id: uuid.UUID, body: RejectionIn, operator: OperatorUser,
                  session: SessionDep) -> Withdrawal:
    return reject_withdrawal(session, withdrawal_id, operator.id, body.reason)


@router.get("/ledger/trial-balance", response_model=TrialBalanceOut)
def get_trial_balance(user: OperatorOrCompliance, session: SessionDep) -> TrialBalanceOut:
    """Every account against its postings; `total` is "0.00" when the books balance."""
    return TrialBalanceOut.model_validate(trial_balance(session).model_dump())
