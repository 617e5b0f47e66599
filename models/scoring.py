"""The scoring rules' versions and the borrowers' on-time payment points."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Identity, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at_column


class ScoringRulesVersion(Base):
    """One version of the scoring rules (models/scoring_rules.py), never changed: a change
    is a new version, and loans keep the version they were scored with."""

    __tablename__ = "scoring_rules"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    rules: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = created_at_column()


class BorrowerPoints(Base):
    """One repayment event's on-time payment points (append-only): a borrower's balance is
    the sum of theirs."""

    __tablename__ = "borrower_points"
    __table_args__ = (
        CheckConstraint(
            "event IN ('on_time_installment','late_installment','loan_repaid','loan_defaulted')", name="event"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    borrower_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    loan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("loan_requests.id"), nullable=False)
    # The repayment event, as business facts: one award per event, however often retried.
    event_key: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    event: Mapped[str] = mapped_column(String(30), nullable=False)
    points: Mapped[int] = mapped_column(Integer, nullable=False)
    rules_version: Mapped[int] = mapped_column(ForeignKey("scoring_rules.version"), nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = created_at_column()
