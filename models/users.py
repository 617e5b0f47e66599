from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Money, created_at_column, uuid_pk


class Role(str, enum.Enum):  # noqa: UP042 (its str() and format() are relied on as they are)
    borrower = "borrower"
    investor = "investor"
    operator = "operator"
    compliance = "compliance"
    # A registered seller of assets (a dealer): an award credit pays it (README "Financing modalities").
    seller = "seller"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('borrower','investor','operator','compliance','seller')", name="role"),
        CheckConstraint("email = lower(email)", name="email_lowercase"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    # Non-qualified individual investors are held to the 259-FZ annual limit.
    is_qualified_investor: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    created_at: Mapped[datetime] = created_at_column()
    # Bumped when a user is blocked or their password changes: older tokens stop working.
    token_version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")


class BorrowerProfile(Base):
    """What a borrower tells us about their finances: the scoring input."""

    __tablename__ = "borrower_profiles"
    __table_args__ = (
        CheckConstraint("monthly_income >= 0", name="income_nonnegative"),
        CheckConstraint("monthly_obligations >= 0", name="obligations_nonnegative"),
        CheckConstraint("employment_months >= 0", name="employment_nonnegative"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    monthly_income: Mapped[Money] = mapped_column(nullable=False)
    monthly_obligations: Mapped[Money] = mapped_column(nullable=False)
    employment_months: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
