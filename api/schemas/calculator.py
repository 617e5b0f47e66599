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
    method: Literal["annuity", "differentiated", "seasonal"] = "annuity"
    start_date: date | None = Field(default=None, description="defaults to today; due dates follow it monthly")
    interest_only_months: int = Field(default=0, strict=True, ge=0, le=24)
    paying_months: list[int] | None = Field(
        default=None, max_length=12, description="seasonal: the months (1-12) payments fall in"
    )
    grace_months: int = Field(default=0, strict=True, ge=0, le=24, description="seasonal: months before the first")
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
    paying_months: list[int] = []
    grace_months: int = 0
    # The most any month carries (a seasonal payment spread over the months it pays for).
    highest_monthly_burden: Money | None = None


class ContributionPlanned(ResponseModel):
    number: int
    due_date: date
    amount: Money


class PlanProjectionOut(ResponseModel):
    """A programmed purchase as planned: contributions until the award is due, then the
    award credit for the rest of the price (its schedule is the answer's `schedule`)."""

    monthly_contribution: Money
    contribution_months: int
    contributions_total: Money
    award_credit_amount: Money
    down_payment: Money
    loan_term_months: int
    award_credit_product: str
    contributions: list[ContributionPlanned]


class FitIn(StrictModel):
    """ "I can pay X a month": give the payment and either the term (the amount is found) or
    the amount (the term is found). Programmed purchases: the amount is the asset's price, the
    term the number of contributions, and `loan_term_months` the award credit's term."""

    product: str = Field(default="standard", max_length=50)
    payment: Amount = Field(description="the most the customer can pay a month")
    amount: Amount | None = None
    term_months: TermMonths | None = None
    loan_term_months: TermMonths | None = Field(default=None, description="programmed purchases only")
    risk_grade: Literal["A", "B", "C", "D", "E"] | None = Field(
        default=None, description="price at this grade's rate; without it, at the product's highest"
    )
    start_date: date | None = None

    @model_validator(mode="after")
    def _one_unknown(self) -> FitIn:
        if (self.amount is None) == (self.term_months is None):
            raise ValueError("give the amount (the term is found) or the term_months (the amount is found), not both")
        return self


class FitOut(ResponseModel):
    product: str
    product_version: int
    modality: str
    solved: Literal["amount", "term_months"]
    payment: Money
    amount: Money
    term_months: int
    schedule: CalculatorOut
    plan: PlanProjectionOut | None = None


class SimulationIn(StrictModel):
    """A loan priced for its amount and term; or, with `payment`, the amount or the term that
    fits it (as POST /v1/calculator/fit), any modality. A plan's simulation names its asset's
    price as the amount, its contributions as the term, and the award credit's term."""

    product: str = Field(default="standard", max_length=50)
    amount: Amount | None = None
    term_months: TermMonths | None = None
    payment: Amount | None = Field(default=None, description="I can pay this a month: solve the missing one")
    loan_term_months: TermMonths | None = Field(default=None, description="programmed purchases only")
    risk_grade: Literal["A", "B", "C", "D", "E"] | None = Field(
        default=None,
        description="price at this grade's rate; without it, at the product's highest rate "
        "(the most the loan could cost before scoring)",
    )
    start_date: date | None = None

    @model_validator(mode="after")
    def _what_to_price(self) -> SimulationIn:
        if self.payment is None and (self.amount is None or self.term_months is None):
            raise ValueError("give the amount and term_months, or the payment and one of them")
        if self.payment is not None and (self.amount is None) == (self.term_months is None):
            raise ValueError("with a payment, give the amount or the term_months (the other is found), not both")
        return self


class SimulationOut(ResponseModel):
    id: uuid.UUID
    product: str
    product_version: int
    risk_grade: str | None
    created_at: datetime
    start_date: date
    result: CalculatorOut
    plan: PlanProjectionOut | None = None
