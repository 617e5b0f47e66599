"""The investor's portfolio (GET /v1/investors/me/portfolio): figures as investing/portfolio.py
computes them; money as strings with two decimals."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import Field, PlainSerializer

from api.schemas.base import Money, Rate, ResponseModel
from domain.money import format_money
from models.loan_status import LoanStatus

# A percentage with two decimals, as a string ("12.34"): the realised return.
Percent = Annotated[Decimal, PlainSerializer(format_money, return_type=str, when_used="json")]


class StatusBucketOut(ResponseModel):
    status: LoanStatus
    count: int
    invested: Money
    outstanding_principal: Money


class GradeBucketOut(ResponseModel):
    grade: str | None = Field(description="the loan's risk grade; null for a loan not graded yet")
    count: int
    invested: Money
    outstanding_principal: Money


class HoldingOut(ResponseModel):
    investment_id: uuid.UUID
    loan_id: uuid.UUID
    loan_status: LoanStatus
    grade: str | None
    rate_annual: Rate | None
    amount: Money
    outstanding_principal: Money
    received_principal: Money
    received_interest: Money
    received_fees: Money
    loss_amount: Money | None = Field(description="null unless the loan defaulted")
    reserve_cover_amount: Money | None = Field(description="null unless the loan defaulted")
    created_at: datetime


class MonthDueOut(ResponseModel):
    month: str = Field(pattern=r"^[0-9]{4}-[0-9]{2}$", examples=["2026-03"])
    principal: Money
    interest: Money
    total: Money


class PortfolioOut(ResponseModel):
    currency: str
    invested_total: Money = Field(description="what the investor lent or has reserved for loans still funding")
    outstanding_principal: Money = Field(description="principal running loans still owe the investor")
    received_principal: Money
    received_interest: Money
    received_fees: Money = Field(description="late fees the investor's share of collections paid")
    losses: Money = Field(description="principal lost in defaults, after the reserve fund's cover")
    reserve_cover: Money = Field(description="principal the reserve fund paid on defaults")
    xirr_percent: Percent | None = Field(
        description="realised annual return in percent (actual/365 XIRR: each investment out on the day its loan "
        "was paid out, money received in on the day it came, running loans' outstanding principal in today at par, "
        "defaulted principal not covered as nothing); null when it cannot be computed",
        examples=["12.34"],
    )
    by_status: list[StatusBucketOut]
    by_grade: list[GradeBucketOut]
    holdings: list[HoldingOut]
    expected_cash_flow: list[MonthDueOut] = Field(
        description="what running loans still owe the investor, by the month each installment is due, ascending"
    )
