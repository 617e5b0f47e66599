"""Per-address request counters: one row per limit, client address and fixed window, shared
by every API process (api/request_limits.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base


class RequestCount(Base):
    """How many requests of one kind (`scope`: sign-up, anonymous POST) one address sent in
    the window that began at `window_start`. Rows of ended windows are deleted as new ones open."""

    __tablename__ = "request_counts"
    __table_args__ = (
        CheckConstraint("count >= 1", name="count_positive"),
        CheckConstraint("window_end > window_start", name="window_ordered"),
        Index("ix_request_counts_window_end", "window_end"),
    )

    scope: Mapped[str] = mapped_column(String(40), primary_key=True)
    address: Mapped[str] = mapped_column(String(100), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    count: Mapped[int] = mapped_column(Integer, nullable=False)
