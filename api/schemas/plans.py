from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import EmailStr, Field

from api.schemas.base import Amount, Money, ResponseModel, StrictModel, TermMonths


class PlanAssetIn(StrictModel):
    kind: str = Field(min_length=1, max_length=50, examples=["truck"])
    description: str = Field(min_length=1, max_length=500, examples=["KAMAZ 65115, 2025"])
    price: Amount | None = Field(default=None, description="the asset's price (from the simulation if one is named)")
    seller_id: uuid.UUID = Field(description="a registered seller (GET /v1/sellers): paid the price at the award")


class PlanCreate(StrictModel):
    product: str = Field(default="vehicle-plan", max_length=50)
    asset: PlanAssetIn
    monthly_contribution: Amount | None = None
    contribution_months: TermMonths | None = None
    loan_term_months: TermMonths = Field(description="the award credit's term, under the award credit product's limits")
    simulation_id: uuid.UUID | None = Field(default=None, description="a saved plan simulation (POST /v1/simulations)")


class PlanCreated(ResponseModel):
    id: uuid.UUID
    status: str
    workflow_id: str


class ContributionOut(ResponseModel):
    number: int
    due_date: date
    amount: Money
    late_fee: Money
    status: str
    paid_on: date | None


class PlanOut(ResponseModel):
    id: uuid.UUID
    product: str
    product_version: int
    award_rule: str
    status: Literal["saving", "awarded", "cancelled"]
    status_reason: str | None
    asset_kind: str
    asset_description: str
    asset_price: Money
    seller_id: uuid.UUID
    monthly_contribution: Money
    contribution_months: int
    loan_term_months: int
    contributed: Money
    late_fees_paid: Money
    refunded: Money | None
    award_loan_id: uuid.UUID | None
    award_event_id: uuid.UUID | None
    created_at: datetime
    closed_at: datetime | None
    contributions: list[ContributionOut] = []


class PlanCancelIn(StrictModel):
    reason: str = Field(default="cancelled by the borrower", min_length=1, max_length=300)


class PlanCancelled(ResponseModel):
    refunded: Money
    cancellation_fee: Money


class BidIn(StrictModel):
    period: str = Field(pattern=r"^\d{4}-\d{2}$", examples=["2027-03"], description="the award event's month")
    amount: Amount


class BidOut(ResponseModel):
    plan_id: uuid.UUID
    period: str
    amount: Money


class PlanRecordOut(ResponseModel):
    id: int
    event_key: str
    action: str
    actor_role: str
    note: str | None
    details: dict[str, Any]
    created_at: datetime
    record_hash: str
    prev_hash: str | None


class PlanTrailOut(ResponseModel):
    plan_id: uuid.UUID
    intact: bool
    records: list[PlanRecordOut]


class SellerCreate(StrictModel):
    email: EmailStr
    password: str = Field(min_length=12, max_length=128)
    legal_name: str = Field(min_length=1, max_length=200, examples=["AgroTech Dealer LLC"])


class SellerOut(ResponseModel):
    id: uuid.UUID
    legal_name: str


class AwardEventIn(StrictModel):
    product: str = Field(max_length=50, examples=["vehicle-plan"])
    period: str = Field(pattern=r"^\d{4}-\d{2}$", examples=["2027-03"])


class AwardEventOut(ResponseModel):
    id: uuid.UUID
    product: str
    period: str
    rule: str
    seed: str
    entries: list[dict[str, str]]
    winner_plan_id: uuid.UUID | None
    winning_bid: Money | None
    created_at: datetime
