"""Value types of ledger reports, shared by the API, activities and workflows."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel


class AccountLine(BaseModel):
    code: str
    kind: str
    currency: str
    balance: Decimal
    postings_total: Decimal
    postings: int


class TrialBalance(BaseModel):
    total: Decimal
    balanced: bool
    mismatched_accounts: list[str]
    totals_by_kind: dict[str, Decimal]
    accounts: list[AccountLine]


class ReconciliationInput(BaseModel):
    """Input of the periodic ledger reconciliation (fields may be added later)."""

    reason: str = "schedule"


class ReconciliationResult(BaseModel):
    balanced: bool
    total: Decimal
    accounts: int
    mismatched_accounts: list[str]


class ReserveFund(BaseModel):
    """The reserve fund beside what it has paid and what it stands behind."""

    currency: str
    balance: Decimal  # what the fund holds now
    covered_total: Decimal  # what it has paid investors of defaulted loans, so far
    covered_investments: int  # how many investments it paid
    outstanding_principal: Decimal  # what the borrowers of running loans still owe investors of principal
    loans_protected: int  # how many running loans that is
