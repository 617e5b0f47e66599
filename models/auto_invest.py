"""Auto-invest rules, what each run allocated and why, and the 259-FZ yearly totals."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    Numeric,
    String,
    Text,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Money, created_at_column


class AutoInvestRuleRow(Base):
    """One investor's rule (the seed's AutoInvestRule fields, plus a portfolio-share cap)."""

    __tablename__ = "auto_invest_rules"
    __table_args__ = (
        CheckConstraint("max_amount_per_loan > 0", name="max_amount_positive"),
        CheckConstraint("min_loan_amount <= max_loan_amount", name="loan_amount_range"),
        CheckConstraint("max_term_months >= 1", name="term_positive"),
        CheckConstraint(
            "max_portfolio_share_percent IS NULL OR max_portfolio_share_percent BETWEEN 1 AND 100",
            name="portfolio_share",
        ),
        CheckConstraint("max_market_premium_percent >= 0 AND max_market_premium_percent <= 100", name="market_premium"),
    )

    investor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False)
    max_amount_per_loan: Mapped[Money] = mapped_column(nullable=False)
    min_loan_amount: Mapped[Money] = mapped_column(nullable=False)
    max_loan_amount: Mapped[Money] = mapped_column(nullable=False)
    allowed_grades: Mapped[list[str]] = mapped_column(JSONB, nullable=False)
    min_rate: Mapped[Decimal] = mapped_column(Numeric(8, 4), nullable=False)
    max_term_months: Mapped[int] = mapped_column(Integer, nullable=False)
    reinvest_returns: Mapped[bool] = mapped_column(Boolean, nullable=False)
    max_portfolio_share_percent: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    # The secondary market: whether the rule buys listings, and the highest premium over par
    # it pays (2.00: up to 102 % of the principal; 0: never above par).
    buy_on_market: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    max_market_premium_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2), nullable=False, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class AutoInvestRun(Base):
    """One auto-invest run. Its number is the rotation's starting point; its key (the
    workflow run that planned it) makes a retried plan find the plan already made."""

    __tablename__ = "auto_invest_runs"

    run_no: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    run_key: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    created_at: Mapped[datetime] = created_at_column()
    # Where this run's window over the open listings ended (the last listing it took, in the
    # market's order): the next run's window starts after it.
    market_after_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    market_after_id: Mapped[uuid.UUID | None] = mapped_column()


class AutoInvestAllocation(Base):
    """What one auto-invest run gave one investor in one loan, why, and what came of it.

    kind "primary": an investment in a loan open for funding (investment_id is the
    investment's id, decided when planned). kind "market": a purchase of part of a listing
    (`allocated` is principal; trade_id is the trade's id, decided when planned; the
    investment is the holding bought, known once the trade settles)."""

    __tablename__ = "auto_invest_allocations"
    __table_args__ = (
        CheckConstraint("outcome IN ('planned','placed','refused','not_allocated')", name="outcome"),
        CheckConstraint(
            "(kind = 'primary' AND investment_id IS NOT NULL AND listing_id IS NULL AND trade_id IS NULL)"
            " OR (kind = 'market' AND listing_id IS NOT NULL AND trade_id IS NOT NULL)",
            name="kind",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    run_no: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    loan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("loan_requests.id"), nullable=False)
    investor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    asked: Mapped[Money] = mapped_column(nullable=False)
    allocated: Mapped[Money] = mapped_column(nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    investment_id: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    kind: Mapped[str] = mapped_column(String(10), nullable=False, server_default="primary")
    listing_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("market_listings.id"))
    trade_id: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    outcome: Mapped[str] = mapped_column(String(20), nullable=False)
    outcome_detail: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    created_at: Mapped[datetime] = created_at_column()


class InvestorYearTotal(Base):
    """How much a non-qualified investor put into loans in a calendar year (259-FZ: at most
    600,000 RUB). Incremented under the row's lock with every reservation: two concurrent
    investments cannot both pass."""

    __tablename__ = "investor_year_totals"
    __table_args__ = (CheckConstraint("invested >= 0", name="invested_nonnegative"),)

    investor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    invested: Mapped[Money] = mapped_column(nullable=False)
