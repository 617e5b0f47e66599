"""Scoring rules, a loan's scoring explanation and the borrower's points."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from api.schemas.base import ResponseModel, StrictModel
from api.schemas.loans import LoanOut
from models.loan_status import LoanStatus
from models.scoring_rules import ScoringRules


class RulesChangeIn(StrictModel):
    rules: ScoringRules
    note: str | None = Field(default=None, max_length=500, description="why the rules change (kept with the version)")


class RulesVersionOut(ResponseModel):
    version: int
    rules: ScoringRules
    note: str | None
    created_by: uuid.UUID | None
    created_at: datetime


class ScoringFactorOut(BaseModel):
    factor: str
    points: int
    reason: str


class LoanScoringOut(BaseModel):
    loan_id: uuid.UUID
    status: LoanStatus
    score: int | None
    grade: str | None
    rate_annual: str | None
    decision: str | None
    rules_version: int | None
    reasons: list[ScoringFactorOut]
    rejection_reason: str | None
    operator_decision: dict | None = Field(
        description="approve, reason and operator_id: the operator's id for staff, their pseudonym for the borrower"
    )


class PointsEntryOut(ResponseModel):
    event: str
    points: int
    loan_id: uuid.UUID
    note: str
    rules_version: int
    created_at: datetime


class PointsOut(BaseModel):
    balance: int
    on_time_installments: int
    late_installments: int
    loans_repaid: int
    loans_defaulted: int
    history: list[PointsEntryOut]


class ReviewOut(BaseModel):
    """A loan awaiting an operator's decision, with the scoring that sent it to review."""

    loan: LoanOut
    scoring: LoanScoringOut
