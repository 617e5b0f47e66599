"""Messages to Temporal that must not be lost: written in the same database transaction as
the fact they announce (a loan requested, a deposit confirmed), delivered afterwards, and
retried until Temporal has them (outbox/delivery.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Identity, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at_column

OUTBOX_KINDS = ("start_loan_workflow", "funds_arrived", "start_plan_workflow", "plan_funds_arrived")


class OutboxMessage(Base):
    __tablename__ = "outbox_messages"
    __table_args__ = (
        CheckConstraint("kind IN (" + ",".join(f"'{k}'" for k in OUTBOX_KINDS) + ")", name="kind"),
        Index("ix_outbox_messages_undelivered", "next_attempt_at", postgresql_where=text("delivered_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    workflow_id: Mapped[str] = mapped_column(String(200), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    next_attempt_at: Mapped[datetime] = created_at_column()
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
