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
