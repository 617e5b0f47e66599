"""Wallet-level operations on top of postings: balances, reserve, release, transfer, and
the wallet statement. Keys are built by the caller from business facts."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, bindparam, select, text
from sqlalchemy.orm import Session, aliased

from ledger.accounts import wallet_accounts
from ledger.postings import Leg, Posted, post_transaction
from models.ledger import LedgerAccount, Wallet


@dataclass(frozen=True)
class WalletBalance:
    wallet_id: uuid.UUID
    currency: str
    available: Decimal
    reserved: Decimal

    @property
    def balance(self) -> Decimal:
        """As in the seed: balance includes reserved; available = balance - reserved."""
        return self.available + self.reserved


def wallet_balance(session: Session, wallet_id: uuid.UUID) -> WalletBalance:
    available, reserved = wallet_accounts(session, wallet_id)
    return WalletBalance(
        wallet_id=wallet_id, currency=available.currency, available=available.balance, reserved=reserved.balance
    )


@dataclass(frozen=True)
class OwnWallet:
    """A user's wallet with its balances, as one read."""

    wallet_type: str
    balance: WalletBalance


def own_wallet_query() -> Select[tuple[uuid.UUID, str, str, Decimal, Decimal]]:
    available, reserved = aliased(LedgerAccount), aliased(LedgerAccount)
    return (
        select(
            Wallet.id,
            Wallet.type,
            Wallet.currency,
            available.balance.label("available"),
            reserved.balance.label("reserved"),
        )
        .join(available, (available.wallet_id == Wallet.id) & (available.kind == "wallet_available"))
        .join(reserved, (reserved.wallet_id == Wallet.id) & (reserved.kind == "wallet_reserved"))
        .where(Wallet.user_id == bindparam("user_id"))
        .order_by(Wallet.created_at, Wallet.id)
        .limit(1)
    )


def own_wallet(row: Any) -> OwnWallet:
    """A row of own_wallet_query as the wallet with its balances."""
    return OwnWallet(row.type, WalletBalance(row.id, row.currency, row.available, row.reserved))


def reserve(
    session: Session,
    wallet_id: uuid.UUID,
    amount: Decimal,
    *,
    key: str,
    kind: str = "reserve",
    loan_id: uuid.UUID | None = None,
    description: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> Posted:
    """available -> reserved (e.g. an accepted investment, a requested withdrawal)."""
    available, reserved = wallet_accounts(session, wallet_id)
    return post_transaction(
        session,
        key=key,
        kind=kind,
        loan_id=loan_id,
        description=description,
        details=details,
        legs=[Leg(available.id, -amount), Leg(reserved.id, amount)],
    )


def release(
    session: Session,
    wallet_id: uuid.UUID,
    amount: Decimal,
    *,
    key: str,
    kind: str = "release",
    loan_id: uuid.UUID | None = None,
    description: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> Posted:
    """reserved -> available (e.g. an unfunded loan, a rejected withdrawal)."""
    available, reserved = wallet_accounts(session, wallet_id)
    return post_transaction(
        session,
        key=key,
        kind=kind,
        loan_id=loan_id,
        description=description,
        details=details,
        legs=[Leg(reserved.id, -amount), Leg(available.id, amount)],
    )


def transfer(
    session: Session,
    from_account_id: int,
    to_account_id: int,
    amount: Decimal,
    *,
    key: str,
    kind: str = "transfer",
    loan_id: uuid.UUID | None = None,
    description: str | None = None,
) -> Posted:
    return post_transaction(
        session,
        key=key,
        kind=kind,
        loan_id=loan_id,
        description=description,
        legs=[Leg(from_account_id, -amount), Leg(to_account_id, amount)],
    )


@dataclass(frozen=True)
class StatementLine:
    position: int  # the id of the transaction's last posting on this wallet: the cursor
    transaction_id: uuid.UUID
    kind: str
    description: str | None
    loan_id: uuid.UUID | None
    amount: Decimal  # change of the wallet's balance (available + reserved)
    available_change: Decimal
    reserved_change: Decimal
    balance_after: Decimal
    available_after: Decimal
    reserved_after: Decimal
    created_at: datetime


_STATEMENT_SQL = text(
    """
    WITH wallet_postings AS (
        SELECT p.id, p.transaction_id, p.amount, a.kind
          FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
         WHERE a.wallet_id = :wallet_id
    ), per_transaction AS (
        SELECT transaction_id,
               max(id) AS position,
               sum(amount) AS amount,
               coalesce(sum(amount) FILTER (WHERE kind = 'wallet_available'), 0) AS available_change,
               coalesce(sum(amount) FILTER (WHERE kind = 'wallet_reserved'), 0) AS reserved_change
          FROM wallet_postings GROUP BY transaction_id
    ), running AS (
        SELECT pt.*,
               sum(pt.amount) OVER w AS balance_after,
               sum(pt.available_change) OVER w AS available_after,
               sum(pt.reserved_change) OVER w AS reserved_after
          FROM per_transaction pt
        WINDOW w AS (ORDER BY pt.position ROWS UNBOUNDED PRECEDING)
    )
    SELECT r.position, r.transaction_id, t.kind, t.description, t.loan_id, r.amount, r.available_change,
           r.reserved_change, r.balance_after, r.available_after, r.reserved_after, t.created_at
      FROM running r JOIN ledger_transactions t ON t.id = r.transaction_id
     WHERE (CAST(:before AS bigint) IS NULL OR r.position < :before)
       AND (CAST(:since AS timestamptz) IS NULL OR t.created_at >= :since)
       AND (CAST(:until AS timestamptz) IS NULL OR t.created_at < :until)
     ORDER BY r.position DESC
     LIMIT :limit
    """
)


def wallet_statement(
    session: Session,
    wallet_id: uuid.UUID,
    *,
    limit: int = 50,
    before: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[StatementLine]:
    """Newest first, optionally only the lines posted in [since, until). `balance_after` is
    the wallet's balance right after each line: locks make a wallet's postings ordered by
    id the order in which its balance changed."""
    rows = session.execute(
        _STATEMENT_SQL, {"wallet_id": wallet_id, "limit": limit, "before": before, "since": since, "until": until}
    ).all()
    return [StatementLine(*row) for row in rows]
