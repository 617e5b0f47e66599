"""The read side of loans: kept in step by the loan workflow's activities."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, Date, DateTime, ForeignKey, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from models.base import Base, Money, created_at_column, uuid_pk
from models.loan_status import LoanStatus


class StatusText(TypeDecorator[LoanStatus]):
    """A LoanStatus column stored as its text: read back as the enum, refused if unknown."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else LoanStatus(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> LoanStatus | None:
        return None if value is None else LoanStatus(value)


class LoanRequest(Base):
    __tablename__ = "loan_requests"
    __table_args__ = (
        CheckConstraint("status IN (" + ",".join(f"'{s}'" for s in LoanStatus) + ")", name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("term_months >= 1", name="term_positive"),
        CheckConstraint("funded_amount >= 0 AND funded_amount <= amount", name="funded_within_amount"),
        CheckConstraint("risk_grade IS NULL OR risk_grade IN ('A','B','C','D','E')", name="risk_grade"),
        CheckConstraint("scoring_score IS NULL OR scoring_score BETWEEN 0 AND 1000", name="scoring_score"),
        UniqueConstraint("borrower_id", "client_key"),
        CheckConstraint(
            "(seller_id IS NULL AND asset_price IS NULL AND down_payment IS NULL AND asset_kind IS NULL)"
            " OR (seller_id IS NOT NULL AND asset_kind IS NOT NULL AND asset_description IS NOT NULL"
            " AND down_payment >= 0 AND asset_price = amount + down_payment)",
            name="asset",
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    borrower_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("loan_products.id"), nullable=False)
    amount: Mapped[Money] = mapped_column(nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False, server_default="RUB")
    term_months: Mapped[int] = mapped_column(Integer, nullable=False)
    rate_annual: Mapped[Decimal | None] = mapped_column(Numeric(8, 4))
    purpose: Mapped[str] = mapped_column(Text, nullable=False)
    # Stored as its text (the CHECK constraint above lists them); read back as a LoanStatus.
    status: Mapped[LoanStatus] = mapped_column(StatusText(30), nullable=False, server_default="pending", index=True)
    funded_amount: Mapped[Money] = mapped_column(nullable=False, server_default="0")
    risk_grade: Mapped[str | None] = mapped_column(String(1))
    scoring_score: Mapped[int | None] = mapped_column(Integer)
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    workflow_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = created_at_column()
    # The borrower's Idempotency-Key of the request, if any.
    client_key: Mapped[str | None] = mapped_column(String(200))
    simulation_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("simulations.id"))
    scoring_details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    scoring_rules_version: Mapped[int | None] = mapped_column(ForeignKey("scoring_rules.version"))
    funding_deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disbursed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # An award credit: the asset it buys, its seller (paid at disbursement: the loan and the
    # down payment, price = amount + down_payment) and the plan it was awarded from, if any.
    seller_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    asset_kind: Mapped[str | None] = mapped_column(String(50))
    asset_description: Mapped[str | None] = mapped_column(Text)
    asset_price: Mapped[Money | None] = mapped_column()
    down_payment: Mapped[Money | None] = mapped_column()
    plan_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("purchase_plans.id"))


class Investment(Base):
    __tablename__ = "investments"
    __table_args__ = (
        CheckConstraint("status IN ('pending','active','repaid','defaulted','released')", name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("sold_principal >= 0 AND sold_principal <= amount", name="sold_within_amount"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    investor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    loan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("loan_requests.id"), nullable=False, index=True)
    amount: Mapped[Money] = mapped_column(nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="pending")
    created_at: Mapped[datetime] = created_at_column()
    # What the investor lost on default after the reserve fund's cover.
    loss_amount: Mapped[Money | None] = mapped_column()
    reserve_cover_amount: Mapped[Money | None] = mapped_column()
    # The calendar year whose 259-FZ total this investment counts in (None: a qualified
    # investor, no limit); a released reservation gives it back to that year.
    counted_year: Mapped[int | None] = mapped_column(Integer)
    # The secondary market: the principal this holding sold (its amount stays what it lent or
    # bought), and when a bought holding was acquired (None: at the loan's disbursement).
    sold_principal: Mapped[Money] = mapped_column(nullable=False, server_default="0")
    acquired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SentInvestment(Base):
    """An investment the API has sent to its loan (before knowing the answer). A resend of it
    (the same Idempotency-Key after a lost answer) is not checked against the wallet again:
    the first may still be reserved by the loan, and the answer must not contradict it."""

    __tablename__ = "sent_investments"

    investment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    loan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("loan_requests.id"), nullable=False)
    investor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False)
    sent_at: Mapped[datetime] = created_at_column()


class RepaymentInstallment(Base):
    __tablename__ = "repayment_schedule"
    __table_args__ = (
        UniqueConstraint("loan_id", "payment_num"),
        CheckConstraint("status IN ('pending','paid','overdue','written_off')", name="status"),
        CheckConstraint("principal >= 0 AND interest >= 0", name="amounts_nonnegative"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    loan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("loan_requests.id"), nullable=False)
    payment_num: Mapped[int] = mapped_column(Integer, nullable=False)
    due_date: Mapped[date] = mapped_column(Date, nullable=False)
    principal: Mapped[Money] = mapped_column(nullable=False)
    interest: Mapped[Money] = mapped_column(nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="pending")
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paid_principal: Mapped[Money] = mapped_column(nullable=False, server_default="0")
    paid_interest: Mapped[Money] = mapped_column(nullable=False, server_default="0")
    late_fee_accrued: Mapped[Money] = mapped_column(nullable=False, server_default="0")
    late_fee_paid: Mapped[Money] = mapped_column(nullable=False, server_default="0")


class InvestmentInstallment(Base):
    """One investment's part of one installment: the figures of its agreement (decided once,
    at disbursement, by domain/investor_shares.py) and what collections have paid it so far."""

    __tablename__ = "investment_installments"
    __table_args__ = (
        CheckConstraint("principal >= 0 AND interest >= 0", name="agreed_nonnegative"),
        CheckConstraint(
            "received_principal >= 0 AND received_principal <= principal "
            "AND received_interest >= 0 AND received_interest <= interest AND received_fee >= 0",
            name="received_within_agreed",
        ),
    )

    investment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("investments.id"), primary_key=True)
    payment_num: Mapped[int] = mapped_column(Integer, primary_key=True)
    loan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("loan_requests.id"), nullable=False, index=True)
    principal: Mapped[Money] = mapped_column(nullable=False)
    interest: Mapped[Money] = mapped_column(nullable=False)
    received_principal: Mapped[Money] = mapped_column(nullable=False, server_default="0")
    received_interest: Mapped[Money] = mapped_column(nullable=False, server_default="0")
    received_fee: Mapped[Money] = mapped_column(nullable=False, server_default="0")


class Notification(Base):
    """A message to a user about their loan (overdue installment, ...). Delivery channels
    (e-mail, messenger) are outside; this is the record that it was due to go out."""

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("dedupe_key"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    loan_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("loan_requests.id"))
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    # Built from business facts ("loan:<id>:installment:3:overdue"): a retried activity adds nothing.
    dedupe_key: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = created_at_column()
