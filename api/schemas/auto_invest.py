"""The investor's auto-invest rule, what runs allocated to them, and the annual limit."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from api.schemas.base import Amount, Money, Rate, RatePercent, ResponseModel, StrictModel, TermMonths
from models.numbers import AsciiDecimal

Grade = Literal["A", "B", "C", "D", "E"]


class AutoInvestRuleIn(StrictModel):
    is_active: bool
    max_amount_per_loan: Amount
    min_loan_amount: Amount
    max_loan_amount: Amount
    allowed_grades: list[Grade] = Field(min_length=1, max_length=5)
    min_rate: RatePercent
    max_term_months: TermMonths
    reinvest_returns: bool
    # Optional diversification: at most this % of the investor's portfolio in any one loan.
    max_portfolio_share_percent: AsciiDecimal | None = Field(default=None, ge=1, le=100, max_digits=5, decimal_places=2)
    # The secondary market (off unless asked for, so older clients keep primary funding only).
    buy_on_market: bool = Field(default=False, description="also buy listed claims on the secondary market")
    max_market_premium_percent: AsciiDecimal = Field(
        default=Decimal("0"),
        ge=0,
        le=100,
        max_digits=5,
        decimal_places=2,
        description="the highest premium over par paid on the market: 2.00 accepts a price up to 102 % "
        "of the principal; 0 never pays above par; a discount is always accepted",
    )

    @field_validator("allowed_grades")
    @classmethod
    def _distinct(cls, grades: list[str]) -> list[str]:
        if len(set(grades)) != len(grades):
            raise ValueError("each grade once")
        return sorted(grades)

    @model_validator(mode="after")
    def _ranges(self) -> AutoInvestRuleIn:
        if self.min_loan_amount > self.max_loan_amount:
            raise ValueError("min_loan_amount must not be above max_loan_amount")
        return self


class AutoInvestRuleOut(ResponseModel):
    is_active: bool
    max_amount_per_loan: Money
    min_loan_amount: Money
    max_loan_amount: Money
    allowed_grades: list[str]
    min_rate: Rate
    max_term_months: int
    reinvest_returns: bool
    max_portfolio_share_percent: Decimal | None
    buy_on_market: bool
    max_market_premium_percent: Money  # (a percent, with two decimals as money is: "2.00")
    updated_at: datetime


class AllocationOut(ResponseModel):
    run_no: int
    kind: Literal["primary", "market"] = Field(
        description="primary: an investment in a loan open for funding; market: a purchase of part of a listing"
    )
    loan_id: uuid.UUID
    listing_id: uuid.UUID | None = Field(description="the listing bought from (market purchases)")
    trade_id: uuid.UUID | None = Field(description="the trade's id (market purchases)")
    asked: Money = Field(description="the amount asked (for a market purchase: principal)")
    allocated: Money = Field(description="the amount allocated (for a market purchase: principal)")
    reason: str
    outcome: str
    outcome_detail: str | None
    investment_id: uuid.UUID | None = Field(
        description="the investment (for a market purchase: the holding bought, once the trade settled)"
    )
    created_at: datetime


class AnnualLimitOut(BaseModel):
    year: int
    qualified: bool
    limit: Money | None
    invested: Money
    left: Money | None
