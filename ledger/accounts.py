"""Opening and finding ledger accounts: each wallet has an available and a reserved account;
the platform has one reserve fund, one fees account and one nominal account per currency."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.orm import Session

from core.errors import NotFound
from models.ledger import LedgerAccount, Wallet

PLATFORM_ACCOUNT_KINDS = ("reserve_fund", "platform_fees", "nominal")


def wallet_account_code(wallet_id: uuid.UUID, part: str) -> str:
    return f"wallet:{wallet_id}:{part}"


def platform_account_code(kind: str, currency: str) -> str:
    return f"{kind}:{currency}"


def _ensure_account(
    session: Session, code: str, kind: str, currency: str, wallet_id: uuid.UUID | None = None
) -> LedgerAccount:
    session.execute(
        insert(LedgerAccount)
        .values(code=code, kind=kind, currency=currency, wallet_id=wallet_id, allow_negative=(kind == "nominal"))
        .on_conflict_do_nothing(index_elements=["code"])
    )
    return session.scalars(select(LedgerAccount).where(LedgerAccount.code == code)).one()


def open_wallet(session: Session, user_id: uuid.UUID, wallet_type: str, currency: str = "RUB") -> Wallet:
    """The user's wallet with its two ledger accounts; idempotent."""
    session.execute(
        insert(Wallet)
        .values(user_id=user_id, type=wallet_type, currency=currency)
        .on_conflict_do_nothing(index_elements=["user_id", "type"])
    )
    wallet = session.scalars(select(Wallet).where(Wallet.user_id == user_id, Wallet.type == wallet_type)).one()
    _ensure_account(session, wallet_account_code(wallet.id, "available"), "wallet_available", currency, wallet.id)
    _ensure_account(session, wallet_account_code(wallet.id, "reserved"), "wallet_reserved", currency, wallet.id)
    return wallet


def escrow_account(session: Session, owner: str, owner_id: uuid.UUID, currency: str = "RUB") -> LedgerAccount:
    """The escrow account of a plan (its contributions) or of an award credit (its down
    payment and withholding until the payout): `owner` is "plan" or "loan"."""
    if owner not in ("plan", "loan"):
        raise ValueError(f"no escrow for {owner}")
    return _ensure_account(session, f"escrow:{owner}:{owner_id}", "escrow", currency)


def ensure_platform_accounts(session: Session, currency: str = "RUB") -> None:
    for kind in PLATFORM_ACCOUNT_KINDS:
        _ensure_account(session, platform_account_code(kind, currency), kind, currency)


def platform_account(session: Session, kind: str, currency: str = "RUB") -> LedgerAccount:
    if kind not in PLATFORM_ACCOUNT_KINDS:
        raise ValueError(f"not a platform account kind: {kind}")
    return _ensure_account(session, platform_account_code(kind, currency), kind, currency)


NO_WALLET = "this user has no wallet (operators and compliance have none)"


def wallet_of_user(session: Session, user_id: uuid.UUID) -> Wallet:
    wallet = session.scalars(
        select(Wallet).where(Wallet.user_id == user_id).order_by(Wallet.created_at, Wallet.id)
    ).first()
    if wallet is None:
        raise NotFound(NO_WALLET)
    return wallet


def available_account_ids(session: Session, user_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Each user's available account id (of their first wallet, as wallet_of_user says), in one
    query whatever the number of users: a collection pays every investor of a loan."""
    wanted = set(user_ids)
    first_wallets = (
        select(Wallet.id, Wallet.user_id)
        .where(Wallet.user_id.in_(wanted))
        .ext(distinct_on(Wallet.user_id))
        .order_by(Wallet.user_id, Wallet.created_at, Wallet.id)
        .subquery()
    )
    rows = session.execute(
        select(first_wallets.c.user_id, first_wallets.c.id, LedgerAccount.id).outerjoin(
            LedgerAccount,
            (LedgerAccount.wallet_id == first_wallets.c.id) & (LedgerAccount.kind == "wallet_available"),
        )
    ).all()
    found: dict[uuid.UUID, int] = {}
    for user_id, wallet_id, account_id in rows:
        if account_id is None:
            raise NotFound(f"wallet {wallet_id} has no ledger accounts")
        found[user_id] = account_id
    if wanted - found.keys():
        raise NotFound(NO_WALLET)
    return found


def wallet_accounts(session: Session, wallet_id: uuid.UUID) -> tuple[LedgerAccount, LedgerAccount]:
    """(available, reserved) of a wallet, with their balances as the database has them now."""
    rows = session.scalars(
        select(LedgerAccount).where(LedgerAccount.wallet_id == wallet_id).execution_options(populate_existing=True)
    ).all()
    by_kind = {row.kind: row for row in rows}
    try:
        return by_kind["wallet_available"], by_kind["wallet_reserved"]
    except KeyError:
        raise NotFound(f"wallet {wallet_id} has no ledger accounts") from None
