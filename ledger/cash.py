"""Money in and out of the platform through the nominal (bank) account.

Deposit: pending until an operator confirms the bank payment; then nominal -> wallet.
Withdrawal: reserves the money at once (available -> reserved); an operator pays it out
(reserved -> nominal) or rejects it (reserved -> available).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import Conflict, IdempotencyConflict, NotFound
from ledger.accounts import platform_account, wallet_accounts, wallet_of_user
from ledger.postings import Leg, post_transaction
from ledger.wallets import release, reserve
from models.ledger import Deposit, Withdrawal


def _earlier_request(session: Session, model: type, user_id: uuid.UUID, amount: Decimal, client_key: str | None):
    """The request this user already made with this Idempotency-Key (None: a new one);
    the same key for another amount is an error."""
    if not client_key:
        return None
    existing = session.scalars(select(model).where(model.user_id == user_id, model.client_key == client_key)).first()
    if existing is not None and existing.amount != amount:
        raise IdempotencyConflict(
            f"Idempotency-Key {client_key!r} was used for another amount", idempotency_key=client_key
        )
    return existing


def _decidable(session: Session, model: type, object_id: uuid.UUID, what: str, outcome: str, verb: str):
    """Locks a pending deposit or withdrawal for an operator's decision. Returns (row, act):
    act is False when the row already has this outcome (a repeated decision changes nothing)."""
    row = session.get(model, object_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no {what} {object_id}")
    if row.status == outcome:
        return row, False
    if row.status != "pending":
        raise Conflict(f"{what} {object_id} is {row.status}; only a pending {what} can be {verb}")
    return row, True


def _record_decision(row, outcome: str, operator_id: uuid.UUID, bank_reference: str | None = None) -> None:
    row.status = outcome
    row.decided_by = operator_id
    row.decided_at = datetime.now(UTC)
    if bank_reference:
        row.bank_reference = bank_reference


def request_deposit(
    session: Session,
    user_id: uuid.UUID,
    amount: Decimal,
    *,
    client_key: str | None = None,
    bank_reference: str | None = None,
) -> tuple[Deposit, bool]:
    """Returns (deposit, created). With a client key, a repeat returns the first deposit."""
    wallet = wallet_of_user(session, user_id)
    existing = _earlier_request(session, Deposit, user_id, amount, client_key)
    if existing is not None:
        return existing, False
    deposit = Deposit(
        user_id=user_id,
        wallet_id=wallet.id,
        amount=amount,
        client_key=client_key,
        bank_reference=bank_reference,
        status="pending",
    )
    session.add(deposit)
    session.flush()
    return deposit, True


def confirm_deposit(
    session: Session, deposit_id: uuid.UUID, operator_id: uuid.UUID, bank_reference: str | None = None
) -> Deposit:
    """The bank payment arrived: nominal -> the user's available money. Idempotent."""
    deposit, act = _decidable(session, Deposit, deposit_id, "deposit", "confirmed", "confirmed")
    if not act:
        return deposit
    available, _ = wallet_accounts(session, deposit.wallet_id)
    nominal = platform_account(session, "nominal", available.currency)
    transaction = post_transaction(
        session,
        key=f"deposit:{deposit.id}:confirm",
        kind="deposit",
        legs=[Leg(nominal.id, -deposit.amount), Leg(available.id, deposit.amount)],
        description="bank payment received",
        details={"deposit_id": str(deposit.id)},
    )
    _record_decision(deposit, "confirmed", operator_id, bank_reference)
    deposit.ledger_transaction_id = transaction.id
    session.flush()
    return deposit


def reject_deposit(session: Session, deposit_id: uuid.UUID, operator_id: uuid.UUID, reason: str) -> Deposit:
    """The bank payment did not arrive (or is not the user's): nothing moves; the reason is
    kept for the depositor. Idempotent: a repeated rejection keeps the first reason."""
    deposit, act = _decidable(session, Deposit, deposit_id, "deposit", "rejected", "rejected")
    if act:
        _record_decision(deposit, "rejected", operator_id)
        deposit.rejection_reason = reason
        session.flush()
    return deposit


def request_withdrawal(
    session: Session, user_id: uuid.UUID, amount: Decimal, *, client_key: str | None = None
) -> tuple[Withdrawal, bool]:
    """Reserves the money now, so it cannot be invested meanwhile. Not enough available
    money: InsufficientFunds, and no withdrawal is recorded."""
    wallet = wallet_of_user(session, user_id)
    existing = _earlier_request(session, Withdrawal, user_id, amount, client_key)
    if existing is not None:
        return existing, False
    withdrawal = Withdrawal(
        id=uuid.uuid4(), user_id=user_id, wallet_id=wallet.id, amount=amount, client_key=client_key, status="pending"
    )
    with session.begin_nested():  # no reservation, no withdrawal
        session.add(withdrawal)
        session.flush()
        reserve(
            session,
            wallet.id,
            amount,
            key=f"withdrawal:{withdrawal.id}:reserve",
            kind="withdrawal_reserve",
            description="withdrawal requested",
        )
    return withdrawal, True


def pay_withdrawal(
    session: Session, withdrawal_id: uuid.UUID, operator_id: uuid.UUID, bank_reference: str | None = None
) -> Withdrawal:
    """The bank transfer went out: reserved -> nominal. Idempotent."""
    withdrawal, act = _decidable(session, Withdrawal, withdrawal_id, "withdrawal", "paid", "paid")
    if not act:
        return withdrawal
    _, reserved = wallet_accounts(session, withdrawal.wallet_id)
    nominal = platform_account(session, "nominal", reserved.currency)
    post_transaction(
        session,
        key=f"withdrawal:{withdrawal.id}:payout",
        kind="withdrawal",
        legs=[Leg(reserved.id, -withdrawal.amount), Leg(nominal.id, withdrawal.amount)],
        description="paid out to the bank",
        details={"withdrawal_id": str(withdrawal.id)},
    )
    _record_decision(withdrawal, "paid", operator_id, bank_reference)
    session.flush()
    return withdrawal


def reject_withdrawal(session: Session, withdrawal_id: uuid.UUID, operator_id: uuid.UUID, reason: str) -> Withdrawal:
    """The payout will not happen: the reservation goes back to available. Idempotent."""
    withdrawal, act = _decidable(session, Withdrawal, withdrawal_id, "withdrawal", "rejected", "rejected")
    if not act:
        return withdrawal
    release(
        session,
        withdrawal.wallet_id,
        withdrawal.amount,
        key=f"withdrawal:{withdrawal.id}:release",
        kind="withdrawal_release",
        description="withdrawal rejected",
        details={"withdrawal_id": str(withdrawal.id)},
    )
    _record_decision(withdrawal, "rejected", operator_id)
    withdrawal.reason = reason
    session.flush()
    return withdrawal
