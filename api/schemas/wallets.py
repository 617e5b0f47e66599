from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from api.schemas.base import Amount, Money, ResponseModel, StrictModel


class WalletOut(ResponseModel):
    id: uuid.UUID
    type: str
    currency: str
    balance: Money
    reserved: Money
    available: Money


class StatementLineOut(ResponseModel):
    position: int
    transaction_id: uuid.UUID
    kind: str
    description: str | None
    loan_id: uuid.UUID | None
    amount: Money
    available_change: Money
    reserved_change: Money
    balance_after: Money
    available_after: Money
    reserved_after: Money
    created_at: datetime


class StatementPage(ResponseModel):
    items: list[StatementLineOut]
    next_before: int | None = Field(description="pass as `before` for the next (older) page")


class DepositIn(StrictModel):
    amount: Amount
    bank_reference: str | None = Field(default=None, max_length=200)


class WithdrawalIn(StrictModel):
    amount: Amount


class DepositOut(ResponseModel):
    id: uuid.UUID
    status: str
    amount: Money
    bank_reference: str | None
    rejection_reason: str | None = Field(description="why an operator rejected it (null unless rejected)")
    created_at: datetime
    decided_at: datetime | None


class WithdrawalOut(ResponseModel):
    id: uuid.UUID
    status: str
    amount: Money
    reason: str | None
    created_at: datetime
    decided_at: datetime | None


class OperatorDepositOut(DepositOut):
    """A deposit in the operators' queue: whose it is, to match it with the bank payment."""

    user_id: uuid.UUID
    user_email: str


class OperatorWithdrawalOut(WithdrawalOut):
    """A withdrawal in the operators' queue: whose it is, to pay the right account."""

    user_id: uuid.UUID
    user_email: str


class DecisionIn(StrictModel):
    bank_reference: str | None = Field(default=None, max_length=200)


class RejectionIn(StrictModel):
    reason: str = Field(min_length=3, max_length=500)


class AccountLineOut(ResponseModel):
    code: str
    kind: str
    currency: str
    balance: Money
    postings_total: Money
    postings: int


class TrialBalanceOut(ResponseModel):
    total: Money
    balanced: bool
    mismatched_accounts: list[str]
    totals_by_kind: dict[str, Money]
    accounts: list[AccountLineOut]


class ReserveFundOut(ResponseModel):
    currency: str
    balance: Money = Field(description="what the reserve fund holds now")
    covered_total: Money = Field(description="what it has paid investors of defaulted loans so far")
    covered_investments: int = Field(description="how many investments it paid")
    outstanding_principal: Money = Field(
        description="the investors' principal still outstanding in active loans: what the fund protects"
    )
    loans_protected: int = Field(description="how many active loans that is")
