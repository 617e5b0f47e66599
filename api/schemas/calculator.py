from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import Field, model_validator

from api.schemas.base import Amount, Money, Rate, RatePercent, ResponseModel, StrictModel, TermMonths


class InstallmentOut(ResponseModel):
    payment_num: int
    due_date: date
    principal: Money
    interest: Money
    total: Money
    balance_after: Money
    interest_only: bool = False


class CalculatorIn(StrictModel):
    amount: Amount
    rate_annual: RatePercent
    term_months: TermMonths
    method: Literal["annuity", "differentiated"] = "annuity"
    start_date: date | None = Field(default=None, description="defaults to today; due dates follow it monthly")
    interest_only_months: int = Field(default=0, strict=True, ge=0, le=24)
    product: str | None = Field(
        default=None, max_length=50, description="check amount and term against this product's ranges"
    )

    @model_validator(mode="after")
    def _grace_within_term(self) -> CalculatorIn:
        if self.interest_only_months >= self.term_months:
            raise ValueError("interest_only_months must be fewer than term_months")
        return self


class CalculatorOut(ResponseModel):
    amount: Money
    rate_annual: Rate
    term_months: int
    method: str
    interest_only_months: int
    payment: Money
    total_interest: Money
    total_payable: Money
    schedule: list[InstallmentOut]


class SimulationIn(StrictModel):
    product: str = Field(default="standard", max_length=50)
    amount: Amount
    term_months: TermMonths
    risk_grade: Literal["A", "B", "C", "D", "E"] | None = Field(
        default=None,
        description="price at this grade's rate; without it, at the product's highest rate "
        "(the most the loan could cost before scoring)",
    )
    start_date: date | None = None


class SimulationOut(ResponseModel):
    id: uuid.UUID
    product: str
    product_version: int
    risk_grade: str | None
    created_at: datetime
    start_date: date
    result: CalculatorOut
