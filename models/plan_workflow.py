"""Inputs, outputs and state of the programmed purchase's workflows (a plan's savings phase,
a product's monthly award event) and their activities: small pydantic models, one per call,
ids, amounts and dates only."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import AwareDatetime, BaseModel

from models.loan_workflow import LoanWorkflowInput

PlanStatus = Literal["saving", "awarded", "cancelled"]


class PlanTerms(BaseModel):
    """A snapshot of the programmed purchase product version the plan was made under."""

    product_id: uuid.UUID
    product_code: str
    product_version: int
    currency: str
    award_rule: Literal["share_reached", "draw", "bid"]
    award_share_percent: Decimal | None = None
    cancellation_refund_percent: Decimal
    award_credit_product: str
    late_fee_grace_days: int
    late_fee_percent_per_day: Decimal
    default_after_days_overdue: int


class PlanWorkflowInput(BaseModel):
    plan_id: uuid.UUID
    borrower_id: uuid.UUID
    asset_price: Decimal
    monthly_contribution: Decimal
    contribution_months: int
    loan_term_months: int
    terms: PlanTerms
    # The sandbox clock (as a loan's): plan time runs this many times faster than real time.
    time_scale: int = 1
    time_zone: str = "Europe/Moscow"
    # The award credit's loan keeps the platform's search attributes (off on test servers
    # that have none registered).
    search_attributes: bool = True
    # Carried over by continue-as-new (None: a new plan).
    state: PlanState | None = None


class ContributionState(BaseModel):
    number: int
    due_date: date
    amount: Decimal
    status: Literal["pending", "overdue", "paid", "cancelled"] = "pending"
    late_fee: Decimal = Decimal("0.00")
    paid_on: date | None = None


class PlanState(BaseModel):
    status: PlanStatus = "saving"
    clock_origin: AwareDatetime | None = None
    started_on: date | None = None
    contributions: list[ContributionState] = []
    contributed: Decimal = Decimal("0.00")
    late_fees_paid: Decimal = Decimal("0.00")
    # Set by the award event's signal: awarded at the next turn of the loop.
    award_event_id: uuid.UUID | None = None
    award_loan_id: uuid.UUID | None = None
    refunded: Decimal | None = None
    reason: str | None = None
    # When money last arrived in the borrower's wallet (a confirmed deposit): late fees stop there.
    funds_arrived_at: AwareDatetime | None = None


class PlanSnapshot(BaseModel):
    plan_id: uuid.UUID
    status: PlanStatus
    contributed: Decimal
    late_fees_paid: Decimal
    contributions_paid: int
    contributions_overdue: int
    award_loan_id: uuid.UUID | None
    refunded: Decimal | None
    reason: str | None


class StartPlanInput(BaseModel):
    plan_id: uuid.UUID
    started_on: date
    contributions: list[ContributionState]
    at: AwareDatetime


class CollectContributionInput(BaseModel):
    plan_id: uuid.UUID
    number: int
    amount: Decimal
    late_fee: Decimal
    paid_on: date


class CollectContributionResult(BaseModel):
    paid: bool
    # What was paid (the first successful attempt's figures, if an earlier one paid).
    late_fee: Decimal = Decimal("0.00")
    paid_on: date | None = None
    contributed: Decimal = Decimal("0.00")
    ledger_transaction_id: uuid.UUID | None = None


class ContributionOverdue(BaseModel):
    plan_id: uuid.UUID
    number: int
    at: AwareDatetime


class AwardPlanInput(BaseModel):
    plan_id: uuid.UUID
    reason: str
    award_event_id: uuid.UUID | None = None
    at: AwareDatetime
    time_scale: int = 1
    time_zone: str = "Europe/Moscow"


class AwardPlanResult(BaseModel):
    """The award credit's loan to start, or why the plan could not be awarded (then it was
    cancelled with everything refunded: the platform's rules changed under it)."""

    loan: LoanWorkflowInput | None = None
    refused: str | None = None
    refunded: Decimal | None = None


class CancelPlanRequest(BaseModel):
    """Update: the borrower (or an operator) cancels the plan."""

    actor_id: uuid.UUID | None = None
    actor_role: Literal["borrower", "operator"] = "borrower"
    reason: str = "cancelled by the borrower"


class CancelPlanInput(BaseModel):
    plan_id: uuid.UUID
    reason: str
    refund_percent: Decimal
    actor_id: uuid.UUID | None = None
    actor_role: str = "system"
    at: AwareDatetime


class CancelPlanResult(BaseModel):
    refunded: Decimal
    cancellation_fee: Decimal
    ledger_transaction_id: uuid.UUID | None = None


class PlanFundsArrived(BaseModel):
    """Signal: money arrived in the borrower's wallet; collect an overdue contribution now."""

    plan_id: uuid.UUID
    at: AwareDatetime | None = None


class AwardSignal(BaseModel):
    """Signal from an award event: this plan won it."""

    plan_id: uuid.UUID
    award_event_id: uuid.UUID


class AwardEventInput(BaseModel):
    product_code: str
    period: str  # YYYY-MM
    held_by: uuid.UUID | None = None


class AwardEventResult(BaseModel):
    event_id: uuid.UUID
    winner_plan_id: uuid.UUID | None = None
    winner_workflow_id: str | None = None
    entries: int = 0
    at: datetime | None = None


PlanWorkflowInput.model_rebuild()
