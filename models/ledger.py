"""The double-entry ledger. Balances live on ledger_accounts and are written only by the
database trigger that applies a posting (see migrations: ledger invariants)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Money, created_at_column, uuid_pk

# Kinds of accounts. Sign convention: every balance is the sum of its postings; user
# wallets, the reserve fund and platform fees hold positive balances (what the platform
# owes or earns); the nominal account is the mirror of money held at the bank, so it is
# negative by exactly the total the platform holds. All balances together sum to zero.
# An escrow account holds a borrower's money for one purpose until it is paid out: a plan's
# contributions, an award credit's down payment (README "Financing modalities").
ACCOUNT_KINDS = ("wallet_available", "wallet_reserved", "reserve_fund", "platform_fees", "nominal", "escrow")


class Wallet(Base):
    __tablename__ = "wallets"
    __table_args__ = (
        UniqueConstraint("user_id", "type"),
        CheckConstraint("type IN ('investor','borrower','seller')", name="type"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False)
    type: Mapped[str] = mapped_column(String(20), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False, server_default="RUB")
    created_at: Mapped[datetime] = created_at_column()


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        CheckConstraint("kind IN (" + ",".join(f"'{k}'" for k in ACCOUNT_KINDS) + ")", name="kind"),
        CheckConstraint("allow_negative OR balance >= 0", name="balance_nonnegative"),
        # Only the nominal account mirrors the bank and may go below zero.
        CheckConstraint("NOT allow_negative OR kind = 'nominal'", name="only_nominal_negative"),
        CheckConstraint(
            "(wallet_id IS NULL) = (kind NOT IN ('wallet_available','wallet_reserved'))", name="wallet_link"
        ),
        UniqueConstraint("wallet_id", "kind"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # Human-readable and unique: "wallet:<uuid>:available", "reserve_fund:RUB", "nominal:RUB".
    code: Mapped[str] = mapped_column(String(120), nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(String(30), nullable=False)
    wallet_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("wallets.id"))
    currency: Mapped[str] = mapped_column(String(3), nullable=False, server_default="RUB")
    allow_negative: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    balance: Mapped[Money] = mapped_column(nullable=False, server_default="0")
    # Number of postings applied: orders an account's history without trusting clocks.
    version: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    created_at: Mapped[datetime] = created_at_column()


class LedgerTransaction(Base):
    __tablename__ = "ledger_transactions"

    id: Mapped[uuid.UUID] = uuid_pk()
    # Built from business facts, e.g. "deposit:<id>:confirm", "loan:<id>:installment:3:collect".
    idempotency_key: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    # sha256 of the canonical content (kind + legs): same key, other content -> refused.
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    loan_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    created_at: Mapped[datetime] = created_at_column()


class LedgerPosting(Base):
    __tablename__ = "ledger_postings"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_nonzero"),
        UniqueConstraint("account_id", "account_version"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    transaction_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_transactions.id"), nullable=False, index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"), nullable=False)
    # Positive raises the account's balance, negative lowers it.
    amount: Mapped[Money] = mapped_column(nullable=False)
    # Set by the trigger that applies the posting, under the account's row lock.
    balance_after: Mapped[Money] = mapped_column(nullable=False)
    account_version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[datetime] = created_at_column()


class Deposit(Base):
    """Money a user says they sent to the nominal bank account: pending until an operator
    confirms the bank payment."""

    __tablename__ = "deposits"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("status IN ('pending','confirmed','rejected')", name="status"),
        UniqueConstraint("user_id", "client_key"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    wallet_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("wallets.id"), nullable=False)
    amount: Mapped[Money] = mapped_column(nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="pending")
    # The client's Idempotency-Key header, if any.
    client_key: Mapped[str | None] = mapped_column(String(200))
    bank_reference: Mapped[str | None] = mapped_column(String(200))
    # Why an operator rejected it (required to reject), shown to the depositor.
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ledger_transaction_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_transactions.id"))
    created_at: Mapped[datetime] = created_at_column()


class Withdrawal(Base):
    """Money leaving the platform: reserved in the wallet until an operator pays it out
    from the nominal account (or rejects it, which releases the reservation)."""

    __tablename__ = "withdrawals"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("status IN ('pending','paid','rejected')", name="status"),
        UniqueConstraint("user_id", "client_key"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    wallet_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("wallets.id"), nullable=False)
    amount: Mapped[Money] = mapped_column(nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="pending")
    client_key: Mapped[str | None] = mapped_column(String(200))
    bank_reference: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
