from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from api.schemas.base import Amount, Money, Rate, ResponseModel, StrictModel, TermMonths
from models.loan_status import LoanStatus


class AssetIn(StrictModel):
    """An award credit's asset: what it buys, from whom, and the borrower's down payment."""

    kind: str = Field(min_length=1, max_length=50, examples=["tractor"])
    description: str = Field(min_length=1, max_length=500, examples=["Belarus 82.1, 2024, new"])
    price: Amount
    down_payment: Amount | Literal[0] = Field(
        description="paid from the wallet when asking; at least the product's share"
    )
    seller_id: uuid.UUID = Field(description="a registered seller (GET /v1/sellers): paid the price at disbursement")


class AssetOut(ResponseModel):
    kind: str
    description: str
    price: Money
    down_payment: Money
    seller_id: uuid.UUID
    plan_id: uuid.UUID | None = None


class LoanCreate(StrictModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"product": "standard", "amount": "100000.00", "term_months": 12, "purpose": "a used tractor"}]
        }
    )

    product: str = Field(default="standard", max_length=50)
    amount: Amount | None = None
    term_months: TermMonths | None = None
    purpose: str = Field(min_length=1, max_length=500)
    simulation_id: uuid.UUID | None = Field(default=None, description="ask for the loan a saved simulation priced")
    asset: AssetIn | None = Field(
        default=None, description="award credit products: the asset (the amount is its price less the down payment)"
    )


class LoanCreated(ResponseModel):
    id: uuid.UUID
    status: LoanStatus
    workflow_id: str


class LoanOut(ResponseModel):
    id: uuid.UUID
    status: LoanStatus
    amount: Money
    currency: str
    funded_amount: Money
    rate_annual: Rate | None
    risk_grade: str | None
    scoring_score: int | None
    term_months: int
    product: str
    product_version: int
    purpose: str | None = None
    rejection_reason: str | None
    funding_deadline: datetime | None
    disbursed_at: datetime | None
    closed_at: datetime | None
    created_at: datetime
    asset: AssetOut | None = None


class ScheduleRowOut(ResponseModel):
    payment_num: int
    due_date: date
    principal: Money
    interest: Money
    status: str
    paid_at: datetime | None
    paid_principal: Money
    paid_interest: Money
    late_fee_accrued: Money
    late_fee_paid: Money


class InvestmentIn(StrictModel):
    amount: Amount


class InvestmentOut(ResponseModel):
    id: uuid.UUID
    loan_id: uuid.UUID
    amount: Money
    status: Literal["reserved"] = "reserved"
    funded_amount: Money
    remaining: Money


class EarlyRepaymentOut(ResponseModel):
    paid: Money
    principal: Money
    interest: Money
    late_fees: Money


class DecisionIn(StrictModel):
    approve: bool
    # (validated when left out too: a rejection without one is refused)
    reason: str = Field(
        default="", max_length=500, validate_default=True, description="required to reject: the borrower is told it"
    )

    @field_validator("reason")
    @classmethod
    def _rejection_has_a_reason(cls, reason: str, info: ValidationInfo) -> str:
        if info.data.get("approve") is False and len(reason.strip()) < 3:
            raise ValueError("a rejection needs a reason (3 characters or more): the borrower is told it")
        return reason


class DecisionOut(ResponseModel):
    status: LoanStatus


class InvestmentLineOut(ResponseModel):
    id: uuid.UUID
    investor_id: uuid.UUID
    investor_email: str | None
    amount: Money
    status: str
    received_principal: Money
    received_interest: Money
    received_fees: Money
    outstanding_principal: Money = Field(
        description="principal the borrower still owes this investment while the loan runs (otherwise 0.00)"
    )
    loss_amount: Money | None = Field(description="what the investor lost on default (null unless defaulted)")
    reserve_cover_amount: Money | None = Field(
        description="what the reserve fund paid this investment on default (null unless defaulted)"
    )
    created_at: datetime


class LateFeesOut(ResponseModel):
    accrued: Money
    paid: Money
    outstanding: Money = Field(description="accrued less paid")


class LoanReserveOut(ResponseModel):
    covered: Money = Field(description="what the reserve fund paid the loan's investors on default")
    losses: Money = Field(description="what the investors lost beyond the cover")


class LoanOverviewOut(ResponseModel):
    loan_id: uuid.UUID
    workflow_id: str | None
    temporal_ui_url: str | None = Field(description="the loan's workflow in the Temporal UI (null: no UI configured)")
    investments: list[InvestmentLineOut]
    late_fees: LateFeesOut
    reserve: LoanReserveOut
    installments_by_status: dict[str, int]
