"""Programmed purchases (plans of contributions until an award), their contributions, award
events and bids, the plan's trail, and the sellers an award credit pays."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Money, created_at_column, uuid_pk


class Seller(Base):
    """A registered seller of assets (a dealer), with a wallet like any party's."""

    __tablename__ = "sellers"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    legal_name: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = created_at_column()


class PurchasePlan(Base):
    """A programmed purchase: monthly contributions into the plan's escrow account until the
    asset is awarded (then the rest is an award credit) or the plan is cancelled."""

    __tablename__ = "purchase_plans"
    __table_args__ = (
        CheckConstraint("status IN ('saving','awarded','cancelled')", name="status"),
        CheckConstraint("asset_price > 0 AND monthly_contribution > 0 AND contributed >= 0", name="amounts"),
        CheckConstraint("contribution_months >= 1 AND loan_term_months >= 1", name="months"),
        UniqueConstraint("borrower_id", "client_key"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    borrower_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("loan_products.id"), nullable=False)
    seller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False)
    asset_kind: Mapped[str] = mapped_column(String(50), nullable=False)
    asset_description: Mapped[str] = mapped_column(Text, nullable=False)
    asset_price: Mapped[Money] = mapped_column(nullable=False)
    monthly_contribution: Mapped[Money] = mapped_column(nullable=False)
    contribution_months: Mapped[int] = mapped_column(Integer, nullable=False)
    loan_term_months: Mapped[int] = mapped_column(Integer, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False, server_default="RUB")
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="saving")
    contributed: Mapped[Money] = mapped_column(nullable=False, server_default="0")
    late_fees_paid: Mapped[Money] = mapped_column(nullable=False, server_default="0")
    refunded: Mapped[Money | None] = mapped_column()
    status_reason: Mapped[str | None] = mapped_column(Text)
    award_loan_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("loan_requests.id"))
    award_event_id: Mapped[uuid.UUID | None] = mapped_column()
    workflow_id: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    client_key: Mapped[str | None] = mapped_column(String(200))
    simulation_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("simulations.id"))
    created_at: Mapped[datetime] = created_at_column()
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PlanContribution(Base):
    __tablename__ = "plan_contributions"
    __table_args__ = (
        CheckConstraint("status IN ('pending','overdue','paid','cancelled')", name="status"),
        CheckConstraint("amount > 0 AND late_fee >= 0", name="amounts"),
    )

    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("purchase_plans.id"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    due_date: Mapped[date] = mapped_column(Date, nullable=False)
    amount: Mapped[Money] = mapped_column(nullable=False)
    late_fee: Mapped[Money] = mapped_column(nullable=False, server_default="0")
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="pending")
    paid_on: Mapped[date | None] = mapped_column(Date)
    ledger_transaction_id: Mapped[uuid.UUID | None] = mapped_column()


class PlanRecord(Base):
    """The plan's trail: append-only, a hash chain per plan like a loan's (compliance/audit.py)."""

    __tablename__ = "plan_records"
    __table_args__ = (
        UniqueConstraint("plan_id", "event_key"),
        UniqueConstraint("plan_id", "prev_hash", postgresql_nulls_not_distinct=True),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("purchase_plans.id"), index=True, nullable=False)
    event_key: Mapped[str] = mapped_column(String(240), nullable=False)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    actor_role: Mapped[str] = mapped_column(String(20), nullable=False)
    action: Mapped[str] = mapped_column(String(80), nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    record_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()


class AwardEvent(Base):
    """One monthly award event of a product (draw or bid): its entries, seed and winner, as
    held (append-only; domain/award.py decides it again from these)."""

    __tablename__ = "award_events"
    __table_args__ = (
        UniqueConstraint("product_code", "period"),
        CheckConstraint("rule IN ('draw','bid')", name="rule"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    product_code: Mapped[str] = mapped_column(String(50), nullable=False)
    period: Mapped[str] = mapped_column(String(7), nullable=False)
    rule: Mapped[str] = mapped_column(String(20), nullable=False)
    seed: Mapped[str] = mapped_column(String(64), nullable=False)
    entries: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    winner_plan_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("purchase_plans.id"))
    winning_bid: Mapped[Money | None] = mapped_column()
    held_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = created_at_column()


class AwardBid(Base):
    """A plan's bid in one month's award event: the lump sum it offers to pay in if it wins."""

    __tablename__ = "award_bids"
    __table_args__ = (CheckConstraint("amount > 0", name="amount"),)

    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("purchase_plans.id"), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    amount: Mapped[Money] = mapped_column(nullable=False)
    created_at: Mapped[datetime] = created_at_column()
