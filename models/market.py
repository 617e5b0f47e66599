"""The secondary market's records: listings (a holding's principal offered at a price) and
trades (a part of a listing bought, settled by the loan's workflow)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Numeric, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Money, created_at_column, uuid_pk

LISTING_STATUSES = ("open", "sold", "cancelled", "closed")


class MarketListing(Base):
    __tablename__ = "market_listings"
    __table_args__ = (
        CheckConstraint("status IN ('open','sold','cancelled','closed')", name="status"),
        CheckConstraint(
            "principal > 0 AND remaining_principal >= 0 AND remaining_principal <= principal", name="principal"
        ),
        CheckConstraint("price_percent > 0", name="price"),
        UniqueConstraint("seller_id", "client_key"),
        Index(
            "uq_market_listings_open_investment",
            "investment_id",
            unique=True,
            postgresql_where=text("status = 'open'"),
        ),
        # the market's order (the buyers' page, auto-invest's keyset window)
        Index("ix_market_listings_open_order", "created_at", "id", postgresql_where=text("status = 'open'")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    investment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("investments.id"), nullable=False)
    loan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("loan_requests.id"), nullable=False, index=True)
    seller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    principal: Mapped[Money] = mapped_column(nullable=False)
    remaining_principal: Mapped[Money] = mapped_column(nullable=False)
    price_percent: Mapped[Decimal] = mapped_column(Numeric(7, 2), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="open")
    close_reason: Mapped[str | None] = mapped_column(Text)
    client_key: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = created_at_column()
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class MarketTrade(Base):
    """Append-only: the app's role may insert a trade, never change or remove one."""

    __tablename__ = "market_trades"
    __table_args__ = (
        CheckConstraint("principal > 0 AND price > 0 AND accrued_interest >= 0 AND fee >= 0", name="amounts"),
        CheckConstraint("buyer_pays = price + accrued_interest AND seller_gets = buyer_pays - fee", name="settlement"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    listing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("market_listings.id"), nullable=False, index=True)
    loan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("loan_requests.id"), nullable=False, index=True)
    seller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    buyer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    seller_investment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("investments.id"), nullable=False)
    buyer_investment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("investments.id"), nullable=False, unique=True)
    principal: Mapped[Money] = mapped_column(nullable=False)
    price_percent: Mapped[Decimal] = mapped_column(Numeric(7, 2), nullable=False)
    price: Mapped[Money] = mapped_column(nullable=False)
    accrued_interest: Mapped[Money] = mapped_column(nullable=False)
    fee: Mapped[Money] = mapped_column(nullable=False)
    buyer_pays: Mapped[Money] = mapped_column(nullable=False)
    seller_gets: Mapped[Money] = mapped_column(nullable=False)
    traded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # What the buyer bought of each unpaid installment, as the trade split it: the assignment
    # agreement's schedule (the holding's own rows may change later, if it is sold on).
    sold_parts: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
