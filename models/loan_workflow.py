"""Inputs, outputs and state of the loan workflow and its activities.

Small pydantic models (carried by the pydantic data converter, so Decimal stays exact), one
per workflow, activity, update and signal, so fields can be added without breaking loans
that are already running. No ORM objects and no personal data: ids, amounts, dates.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

from models.loan_status import LoanStatus

InstallmentStatus = Literal["pending", "paid", "overdue", "written_off"]


class LoanTerms(BaseModel):
    """A snapshot of the product version the loan was made under."""

    product_id: uuid.UUID
    product_code: str
    product_version: int
    currency: str
    amortization_method: Literal["annuity", "differentiated", "seasonal"]
    interest_only_months: int
    rates_by_grade: dict[str, Decimal]
    platform_fee_percent: Decimal
    reserve_fund_percent: Decimal
    funding_window_days: int
    funding_window_minutes: int | None = None
    min_investment: Decimal
    max_investor_share_percent: Decimal
    late_fee_grace_days: int
    late_fee_percent_per_day: Decimal
    default_after_days_overdue: int
    requires_manual_approval: bool
    # Default for loans started before products had a cap.
    max_debt_to_income_percent: Decimal = Decimal("50")
    # Financing modalities (defaults: loans started before them).
    modality: Literal["loan", "award_credit", "programmed_purchase"] = "loan"
    paying_months: list[int] | None = None
    grace_months: int = 0


class InstallmentAmounts(BaseModel):
    """Money on one installment, by kind: what a collection paid on it (or, as AmountsDue,
    what is owed on it)."""

    payment_num: int
    fee: Decimal
    interest: Decimal
    principal: Decimal

    @property
    def total(self) -> Decimal:
        return self.fee + self.interest + self.principal

    def settles(self, due: InstallmentAmounts) -> bool:
        """Paid in full: every kind of what was owed, to the kopek."""
        return (self.fee, self.interest, self.principal) == (due.fee, due.interest, due.principal)


class AmountsDue(InstallmentAmounts):
    """What is owed on one installment now, and the late fee accrued on it so far (the read
    side shows it)."""

    fee_accrued: Decimal = Decimal("0.00")


class InstallmentState(BaseModel):
    """One installment as the loan workflow follows it, from the schedule to paid or written off."""

    payment_num: int
    due_date: date
    principal: Decimal
    interest: Decimal
    paid_principal: Decimal = Decimal("0.00")
    paid_interest: Decimal = Decimal("0.00")
    # Late fee accrued up to overdue day `fee_accrued_day` (see domain.fees), rounded once:
    # `fee_exact` is the same fee unrounded (since the patch borrowers-time).
    fee_accrued: Decimal = Decimal("0.00")
    fee_accrued_day: int = 0
    fee_exact: Decimal = Decimal("0")
    # The day (in the platform's time zone) of the collection attempt that found this
    # installment short after its due day had ended: it is overdue from then, not from the
    # due date, so time the platform was away never counts against the borrower.
    overdue_since: date | None = None
    paid_fee: Decimal = Decimal("0.00")
    status: InstallmentStatus = "pending"

    @property
    def principal_due(self) -> Decimal:
        return self.principal - self.paid_principal

    @property
    def interest_due(self) -> Decimal:
        return self.interest - self.paid_interest

    @property
    def fee_due(self) -> Decimal:
        return self.fee_accrued - self.paid_fee

    @property
    def settled(self) -> bool:
        return self.status in ("paid", "written_off")

    def outstanding(self) -> AmountsDue:
        """Everything still owed on this installment (fees accrued so far included)."""
        return AmountsDue(
            payment_num=self.payment_num,
            fee=self.fee_due,
            interest=self.interest_due,
            principal=self.principal_due,
            fee_accrued=self.fee_accrued,
        )


class LoanState(BaseModel):
    """Everything the workflow must carry across continue-as-new."""

    status: LoanStatus = LoanStatus.pending
    score: int | None = None
    grade: str | None = None
    rate_annual: Decimal | None = None
    rejection_reason: str | None = None
    funded_amount: Decimal = Decimal("0.00")
    # investor id -> total invested in this loan (funding phase only)
    invested_by: dict[str, Decimal] = Field(default_factory=dict)
    funding_deadline: datetime | None = None
    # The sandbox clock: loan time = origin + (workflow time - origin) x time_scale.
    clock_origin: datetime | None = None
    disbursed_on: date | None = None
    installments: list[InstallmentState] = Field(default_factory=list)
    collection_seq: int = 0
    # Updates admitted in this run (refused ones included: the server counts them too), and
    # investments accepted in it. A funding run ends (continue-as-new) after updates_per_run
    # accepted investments, or near the server's own limit of updates per run; a repaying run
    # after updates_per_run updates of any kind (trades, early repayment asks).
    updates_this_run: int = 0
    accepted_this_run: int = 0
    # Every investment the loan accepted while funding, by investment id, with its first
    # answer: a resend (after an RPC timeout, a retried auto-invest placement, a key resent
    # after its record expired) gets that answer again, in this run or a later one.
    accepted_investments: dict[str, InvestmentAccepted] = Field(default_factory=dict)
    # When the last collection attempt began, and the earliest moment (workflow time) money
    # arrived since (late fees stop there): carried across continue-as-new.
    last_attempt_at: datetime | None = None
    funds_arrived_at: datetime | None = None
    # The agreements are rendering beside the repayment (workflows/loan.py): a run that
    # continues as new meanwhile asks for them again (registering them is idempotent).
    agreements_pending: bool = False


class LoanWorkflowInput(BaseModel):
    loan_id: uuid.UUID
    borrower_id: uuid.UUID
    amount: Decimal
    term_months: int
    terms: LoanTerms
    time_scale: int = 1
    # Manual review waits this long for an operator, then rejects (not scaled).
    review_timeout_days: int = 7
    # Investments accepted in one run before continuing as new (the server refuses more than
    # 2,000 updates per run; a funding rush must not hit that wall). Refused updates do not
    # count here: they cannot force a new run (only UPDATES_PER_RUN_LIMIT of them could).
    updates_per_run: int = Field(default=1000, ge=2, le=1900)
    # Continue as new past this many history events (or when the server suggests it).
    history_events_per_run: int = Field(default=5000, ge=20)
    # Upsert the custom search attributes (LoanStatus, ...). Off only where the server
    # cannot register them: Temporal's time-skipping test server.
    search_attributes: bool = True
    # How long one attempt of a loan activity may take before Temporal gives it to another
    # worker (a worker that died mid-activity is noticed after this). Tests shorten it.
    activity_timeout_seconds: int = Field(default=60, ge=1, le=3600)
    # Loan activities heartbeat every second (activities/heartbeat.py): a worker killed or
    # frozen in the middle of one is noticed after this, and the attempt retried elsewhere.
    heartbeat_timeout_seconds: int = Field(default=10, ge=2, le=600)
    # Benchmarks only (the API never sets it): pins the sandbox clock's origin, and so the
    # loan's start date, to this instant, so that many loans fall due at the same moment.
    clock_origin: datetime | None = None
    # The platform's time zone: due dates are whole days in it (since the patch
    # borrowers-time; loans started before it count UTC days).
    time_zone: str = "UTC"
    # Set when the workflow continues as new.
    state: LoanState | None = None


# --- messages ---------------------------------------------------------------------------


class InvestmentRequest(BaseModel):
    investment_id: uuid.UUID
    investor_id: uuid.UUID
    amount: Decimal
    # The loan this request is for: a sealed request copied out of another loan's history is
    # refused (the validator checks it). None only in histories from before it was added.
    loan_id: uuid.UUID | None = None


class InvestmentAccepted(BaseModel):
    investment_id: uuid.UUID
    # Set since the loan remembers its investments (older answers in histories lack it).
    investor_id: uuid.UUID | None = None
    amount: Decimal
    funded_amount: Decimal
    remaining: Decimal


class ApprovalDecision(BaseModel):
    approve: bool
    operator_id: uuid.UUID
    reason: str = ""
    loan_id: uuid.UUID | None = None  # (as InvestmentRequest.loan_id)


class ApprovalResult(BaseModel):
    status: LoanStatus


class FundsArrived(BaseModel):
    """Signal: money arrived in the borrower's wallet (a confirmed deposit)."""

    deposit_id: uuid.UUID | None = None
    # The loan it is sent to: copied into another loan, it is dropped (None: sent before this).
    loan_id: uuid.UUID | None = None
    # When it arrived (the confirmation): late fees stop accruing there, however late the
    # loan hears of it. None: now.
    at: AwareDatetime | None = None


class EarlyRepaymentRequest(BaseModel):
    requested_by: uuid.UUID
    loan_id: uuid.UUID | None = None  # (as InvestmentRequest.loan_id)


class TradeRequest(BaseModel):
    """The `trade` update: a buyer takes `principal` of an open listing of this loan."""

    trade_id: uuid.UUID
    listing_id: uuid.UUID
    buyer_id: uuid.UUID
    principal: Decimal
    loan_id: uuid.UUID
    # The most the buyer accepts to pay (price + accrued interest): the price moves with the
    # day's accrued interest, and an auto-invest budget was planned for a cost.
    max_buyer_pays: Decimal | None = None


class SettleTradeInput(BaseModel):
    """The settle_trade activity: the trade on the loan's own date."""

    trade_id: uuid.UUID
    listing_id: uuid.UUID
    buyer_id: uuid.UUID
    principal: Decimal
    loan_id: uuid.UUID
    on: date
    traded_at: AwareDatetime
    # the loan's time zone: its calendar days (the 259-FZ year is always Moscow's)
    time_zone: str
    max_buyer_pays: Decimal | None = None


class TradeSettled(BaseModel):
    trade_id: uuid.UUID
    listing_id: uuid.UUID
    buyer_investment_id: uuid.UUID
    principal: Decimal
    price: Decimal
    accrued_interest: Decimal
    fee: Decimal
    buyer_pays: Decimal
    seller_gets: Decimal
    listing_remaining: Decimal


class TradeDocumentsInput(BaseModel):
    trade_id: uuid.UUID
    loan_id: uuid.UUID


class EarlyRepaymentResult(BaseModel):
    paid: Decimal
    principal: Decimal
    interest: Decimal
    late_fees: Decimal


class LoanSnapshot(BaseModel):
    """The query answer: live state for operators and the API."""

    loan_id: uuid.UUID
    status: LoanStatus
    amount: Decimal
    funded_amount: Decimal
    remaining: Decimal
    rate_annual: Decimal | None
    risk_grade: str | None
    score: int | None
    rejection_reason: str | None
    # Loan-time date as of the workflow's latest step (a query does not move workflow time).
    loan_today: date | None
    installments: list[InstallmentState]
    # The agreements are rendering beside the repayment (workflows/loan.py): trades wait.
    agreements_pending: bool = False


# --- activities -------------------------------------------------------------------------


class RegisterLoanInput(BaseModel):
    loan_id: uuid.UUID
    borrower_id: uuid.UUID
    product_id: uuid.UUID
    amount: Decimal
    term_months: int
    workflow_id: str


class StatusChange(BaseModel):
    loan_id: uuid.UUID
    status: LoanStatus
    score: int | None = None
    grade: str | None = None
    rate_annual: Decimal | None = None
    rejection_reason: str | None = None
    scoring_details: dict[str, Any] | None = None
    funding_deadline: datetime | None = None
    notify_borrower: str | None = None
    at: datetime | None = None
    # Who made the change, for the trail: the operator of a review decision; else the platform.
    actor_id: uuid.UUID | None = None
    actor_role: str | None = None


class ScoreLoanInput(BaseModel):
    loan_id: uuid.UUID
    borrower_id: uuid.UUID
    amount: Decimal
    term_months: int
    terms: LoanTerms


class ScoreLoanResult(BaseModel):
    score: int
    grade: str | None
    rate_annual: Decimal | None
    decision: Literal["approve", "review", "reject"]
    reasons: list[dict[str, Any]]
    reject_reason: str | None = None
    rules_version: int | None = None

    @classmethod
    def refused(cls, reason: str, rules_version: int | None) -> ScoreLoanResult:
        """Rejected before any factor was scored (no profile, no schedule)."""
        return cls(
            score=0,
            grade=None,
            rate_annual=None,
            decision="reject",
            reasons=[],
            reject_reason=reason,
            rules_version=rules_version,
        )


class ReserveInvestmentInput(BaseModel):
    loan_id: uuid.UUID
    investment_id: uuid.UUID
    investor_id: uuid.UUID
    amount: Decimal
    # When the investment is made: the 259-FZ limit counts it in this moment's calendar year.
    at: datetime | None = None


class ReleaseInvestmentsInput(BaseModel):
    loan_id: uuid.UUID
    reason: str


class ReleaseInvestmentsResult(BaseModel):
    released: int
    total: Decimal


class ScheduledInstallment(BaseModel):
    """A line of the fixed schedule, as the disbursement stores it."""

    payment_num: int
    due_date: date
    principal: Decimal
    interest: Decimal


class DisburseInput(BaseModel):
    loan_id: uuid.UUID
    borrower_id: uuid.UUID
    amount: Decimal
    currency: str
    platform_fee: Decimal
    reserve_contribution: Decimal
    rate_annual: Decimal
    installments: list[ScheduledInstallment]
    at: datetime


class DisburseResult(BaseModel):
    ledger_transaction_id: uuid.UUID
    to_borrower: Decimal
    investors: int


class CollectInput(BaseModel):
    loan_id: uuid.UUID
    borrower_id: uuid.UUID
    currency: str
    key: str
    purpose: Literal["installment", "early_repayment"]
    items: list[AmountsDue]
    # All or nothing (early repayment); otherwise take what is there (partial payment).
    require_full: bool = False
    at: datetime


class CollectResult(BaseModel):
    total: Decimal
    items: list[InstallmentAmounts]


class OverdueNotice(BaseModel):
    loan_id: uuid.UUID
    borrower_id: uuid.UUID
    payment_num: int
    amount_due: Decimal
    due_date: date


class DefaultInput(BaseModel):
    loan_id: uuid.UUID
    currency: str
    outstanding_principal: Decimal
    written_off: list[AmountsDue]
    at: datetime


class DefaultResult(BaseModel):
    covered: Decimal
    loss: Decimal


class CompleteInput(BaseModel):
    loan_id: uuid.UUID
    at: datetime


LoanState.model_rebuild()
LoanWorkflowInput.model_rebuild()
