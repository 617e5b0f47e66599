"""Saved financing-calculator results."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, Date, ForeignKey, Integer, Numeric, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Money, created_at_column, uuid_pk


class Simulation(Base):
    """What the borrower saw before asking: the inputs and the exact schedule computed."""

    __tablename__ = "simulations"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("term_months >= 1", name="term_positive"),
        CheckConstraint("method IN ('annuity','differentiated','seasonal','contributions')", name="method"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    # The product version the simulation was priced under (None: a free calculator run).
    product_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("loan_products.id"))
    risk_grade: Mapped[str | None] = mapped_column(String(1))
    amount: Mapped[Money] = mapped_column(nullable=False)
    rate_annual: Mapped[Decimal] = mapped_column(Numeric(8, 4), nullable=False)
    term_months: Mapped[int] = mapped_column(Integer, nullable=False)
    method: Mapped[str] = mapped_column(String(20), nullable=False)
    interest_only_months: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # The seasonal plan's paying months and grace.
    paying_months: Mapped[list[int] | None] = mapped_column(JSONB)
    grace_months: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    start_date: Mapped[date] = mapped_column(Date, nullable=False)
    result: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = created_at_column()
