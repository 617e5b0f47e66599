"""What the document activities and the statements workflow take and give (no ORM here)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field


class LoanAgreementsInput(BaseModel):
    loan_id: uuid.UUID


class LoanAgreementsResult(BaseModel):
    documents: int


class InvestorStatementsInput(BaseModel):
    # YYYY-MM; empty: the month before the one the workflow runs in (the Schedule's case).
    month: str | None = Field(default=None, pattern=r"^\d{4}-(0[1-9]|1[0-2])$")


class StatementsBatch(BaseModel):
    month: str


class StatementsResult(BaseModel):
    month: str
    statements: int
