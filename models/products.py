"""Loan products: the business rules of a kind of loan, as data (versioned)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Money, Percent, created_at_column, uuid_pk


class LoanProduct(Base):
    """One version of a product. A change writes a new row with version + 1 and moves
    `is_current`; loans point at the row (the version) they were made under."""

    __tablename__ = "loan_products"
    __table_args__ = (
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("min_amount > 0 AND max_amount >= min_amount", name="amount_range"),
        CheckConstraint("min_term_months >= 1 AND max_term_months >= min_term_months", name="term_range"),
        CheckConstraint("amortization_method IN ('annuity','differentiated','seasonal')", name="amortization_method"),
        CheckConstraint("modality IN ('loan','award_credit','programmed_purchase')", name="modality"),
        CheckConstraint("grace_months >= 0", name="grace_months"),
        CheckConstraint(
            "(modality = 'programmed_purchase') = (award_rule IS NOT NULL)"
            " AND (award_rule IS NULL OR award_rule IN ('share_reached','draw','bid'))",
            name="award_rule",
        ),
        CheckConstraint("platform_fee_percent >= 0 AND platform_fee_percent < 100", name="platform_fee"),
        CheckConstraint("reserve_fund_percent >= 0 AND reserve_fund_percent < 100", name="reserve_fund"),
        CheckConstraint("platform_fee_percent + reserve_fund_percent < 100", name="withholding_below_amount"),
        CheckConstraint("funding_window_days >= 1", name="funding_window"),
        CheckConstraint("funding_window_minutes IS NULL OR funding_window_minutes >= 1", name="funding_window_minutes"),
        CheckConstraint("min_investment > 0", name="min_investment"),
        CheckConstraint("max_investor_share_percent > 0 AND max_investor_share_percent <= 100", name="max_share"),
        CheckConstraint("late_fee_grace_days >= 0", name="grace_days"),
        CheckConstraint("late_fee_percent_per_day >= 0", name="late_fee"),
        CheckConstraint("default_after_days_overdue >= 1", name="default_days"),
        CheckConstraint("interest_only_months >= 0", name="interest_only_months"),
        CheckConstraint("length(currency) = 3", name="currency"),
        # Only one current version per code.
        Index("uq_loan_products_current_code", "code", unique=True, postgresql_where=text("is_current")),
        Index("uq_loan_products_code_version", "code", "version", unique=True),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    code: Mapped[str] = mapped_column(String(50), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    is_current: Mapped[bool] = mapped_column(Boolean, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False, server_default="RUB")
    min_amount: Mapped[Money] = mapped_column(nullable=False)
    max_amount: Mapped[Money] = mapped_column(nullable=False)
    min_term_months: Mapped[int] = mapped_column(Integer, nullable=False)
    max_term_months: Mapped[int] = mapped_column(Integer, nullable=False)
    amortization_method: Mapped[str] = mapped_column(String(20), nullable=False)
    # {"A": "14.00", ...}: % a year by risk grade.
    rates_by_grade: Mapped[dict[str, str]] = mapped_column(JSONB, nullable=False)
    interest_only_months: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    platform_fee_percent: Mapped[Percent] = mapped_column(nullable=False)
    reserve_fund_percent: Mapped[Percent] = mapped_column(nullable=False)
    funding_window_days: Mapped[int] = mapped_column(Integer, nullable=False)
    # Overrides the days when set: short windows for demo and test products.
    funding_window_minutes: Mapped[int | None] = mapped_column(Integer)
    min_investment: Mapped[Money] = mapped_column(nullable=False)
    max_investor_share_percent: Mapped[Percent] = mapped_column(nullable=False)
    late_fee_grace_days: Mapped[int] = mapped_column(Integer, nullable=False)
    late_fee_percent_per_day: Mapped[Percent] = mapped_column(nullable=False)
    default_after_days_overdue: Mapped[int] = mapped_column(Integer, nullable=False)
    requires_manual_approval: Mapped[bool] = mapped_column(Boolean, nullable=False)
    # Monthly payment + existing obligations may take at most this % of monthly income.
    max_debt_to_income_percent: Mapped[Percent] = mapped_column(nullable=False, server_default="50")
    # The secondary market: prices a listing may ask (% of the principal sold), the platform's
    # fee on a trade (% of the price, paid by the seller), how long a holding is kept before it
    # may be listed.
    market_min_price_percent: Mapped[Percent] = mapped_column(nullable=False, server_default="90")
    market_max_price_percent: Mapped[Percent] = mapped_column(nullable=False, server_default="110")
    market_fee_percent: Mapped[Percent] = mapped_column(nullable=False, server_default="1")
    market_min_holding_days: Mapped[int] = mapped_column(Integer, nullable=False, server_default="30")
    # Financing modalities (README "Financing modalities"): what the product finances and how.
    modality: Mapped[str] = mapped_column(String(30), nullable=False, server_default="loan")
    # The seasonal plan: the months payments fall in (1..12) and the months before the first.
    paying_months: Mapped[list[int] | None] = mapped_column(JSONB)
    grace_months: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # Award credit: the least down payment (% of the asset's price) and the kinds of asset.
    min_down_payment_percent: Mapped[Percent] = mapped_column(nullable=False, server_default="0")
    asset_kinds: Mapped[list[str] | None] = mapped_column(JSONB)
    # Programmed purchase: how a plan is awarded, the share of the price that awards it
    # (share_reached), what a cancelled plan gets back (% of its contributions) and the award
    # credit product its remainder is lent under.
    award_rule: Mapped[str | None] = mapped_column(String(20))
    award_share_percent: Mapped[Percent | None] = mapped_column()
    cancellation_refund_percent: Mapped[Percent | None] = mapped_column()
    award_credit_product: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[datetime] = created_at_column()
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))

    def rate_for_grade(self, grade: str) -> Decimal:
        """% a year for a risk grade (stored as strings in JSON to stay exact)."""
        return Decimal(self.rates_by_grade[grade])
