"""What a money operation decided, stored under its business key in the operation's own
database transaction: the result, or the business refusal. A retried or stalled attempt of
the same operation reads this (under the loan's lock) instead of deciding again."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at_column


class OperationOutcome(Base):
    __tablename__ = "operation_outcomes"
    __table_args__ = (
        CheckConstraint("(result IS NULL) <> (refusal IS NULL)", name="result_or_refusal"),
        Index("ix_operation_outcomes_loan_id", "loan_id"),
    )

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    loan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("loan_requests.id"), nullable=False)
    operation: Mapped[str] = mapped_column(String(40), nullable=False)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # {"error": class name in core.errors, "detail": ..., "extra": {...}}
    refusal: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    recorded_at: Mapped[datetime] = created_at_column()
