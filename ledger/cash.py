"""Money in and out of the platform through the nominal (bank) account.

Deposit: pending until an operator confirms the bank payment; then nominal -> wallet.
Withdrawal: reserves the money at once (available -> reserved); an operator pays it out
(reserved -> nominal) or rejects it (reserved -> available).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import Conflict, IdempotencyConflict, NotFound
from ledger.accounts import platform_account, wallet_accounts, wallet_of_user
from ledger.postings import Leg, post_transaction
from ledger.wallets import reserve
from models.ledger import Deposit, Withdrawal


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _same_request(existing_amount: Decimal, amount: Decimal, client_key: str) -> None:
    if existing_amount != amount:
        raise IdempotencyConflict(f"Idempotency-Key {client_key!r} was used for another amount",
                                  idempotency_key=client_key)


def request_deposit(session: Session, user_id: uuid.UUID, amount: Decimal, *, client_key: str | None = None,
                    bank_reference: str | None = None) -> tuple[Deposit, bool]:
    """Returns (deposit, created). With a client key, a repeat returns the first deposit."""
    wallet = wallet_of_user(session, user_id)
    if client_key:
        existing = session.scalars(select(Deposit).where(Deposit.user_id == user_id,
                                                         Deposit.client_key == client_key)).first()
        if existing:
            _same_request(existing.amount, amount, client_key)
            return existing, False
    deposit = Deposit(user_id=user_id, wallet_id=wallet.id, amount=amount, client_key=client_key,
                      bank_reference=bank_reference, status="pending")
    session.add(deposit)
    session.flush()
    return deposit, True


def _locked(session: Session, model: type, object_id: uuid.UUID, what: str):
    row = session.get(model, object_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no {what} {object_id}")
    return row


def confirm_deposit(session: Session, deposit_id: uuid.UUID, operator_id: uuid.UUID,
                    bank_reference: str | None = None) -> Deposit:
    """The bank payment arrived: nominal -> the user's available money. Idempotent."""
    deposit: Deposit = _locked(session, Deposit, deposit_id, "deposit")
    if deposit.status == "confirmed":
        return deposit
    if deposit.status != "pending":
        raise Conflict(f"deposit {deposit_id} is {deposit.status}; only a pending deposit can be confirmed")
    available, _ = wallet_accounts(session, deposit.wallet_id)
    nominal = platform_account(session, "nominal", available.currency)
    transaction = post_transaction(
        session, key=f"deposit:{deposit.id}:confirm", kind="deposit",
        legs=[Leg(nominal.id, -deposit.amount), Leg(available.id, deposit.amount)],
        description="bank payment received", details={"deposit_id": str(deposit.id)})
    deposit.status = "confirmed"
    deposit.decided_by = operator_id
    deposit.decided_at = _now()
    deposit.ledger_transaction_id = transaction.id
    if bank_reference:
        deposit.bank_reference = bank_reference
    session.flush()
    return deposit


def reject_deposit(session: Session, deposit_id: uuid.UUID, operator_id: uuid.UUID) -> Deposit:
    deposit: Deposit = _locked(session, Deposit, deposit_id, "deposit")
    if deposit.status == "rejected":
        return deposit
    if deposit.status != "pending":
        raise Conflict(f"deposit {deposit_id} is {deposit.status}; only a pending deposit can be rejected")
    deposit.status = "rejected"
    deposit.decided_by = operator_id
    deposit.decided_at = _now()
    session.flush()
    return deposit


def request_withdrawal(session: Session, user_id: uuid.UUID, amount: Decimal, *,
                       client_key: str | None = None) -> tuple[Withdrawal, bool]:
    """Reserves the money now, so it cannot be invested meanwhile. Not enough available
    money: InsufficientFunds, and no withdrawal is recorded."""
    wallet = wallet_of_user(session, user_id)
    if client_key:
        existing = session.scalars(select(Withdrawal).where(Withdrawal.user_id == user_id,
                                                            Withdrawal.client_key == client_key)).first()
        if existing:
            _same_request(existing.amount, amount, client_key)
            return existing, False
    withdrawal = Withdrawal(id=uuid.uuid4(), user_id=user_id, wallet_id=wallet.id, amount=amount,
                            client_key=client_key, status="pending")
    with session.begin_nested():  # no reservation, no withdrawal
        session.add(withdrawal)
        session.flush()
        reserve(session, wallet.id, amount, key=f"withdrawal:{withdrawal.id}:reserve",
                kind="withdrawal_reserve", description="withdrawal requested")
    return withdrawal, True


def pay_withdrawal(session: Session, withdrawal_id: uuid.UUID, operator_id: uuid.UUID,
                   bank_reference: str | None = None) -> Withdrawal:
    """The bank transfer went out: reserved -> nominal. Idempotent."""
    withdrawal: Withdrawal = _locked(session, Withdrawal, withdrawal_id, "withdrawal")
    if withdrawal.status == "paid":
        return withdrawal
    if withdrawal.status != "pending":
        raise Conflict(f"withdrawal {withdrawal_id} is {withdrawal.status}; only a pending one can be paid")
    _, reserved = wallet_accounts(session, withdrawal.wallet_id)
    nominal = platform_account(session, "nominal", reserved.currency)
    post_transaction(session, key=f"withdrawal:{withdrawal.id}:payout", kind="withdrawal",
                     legs=[Leg(reserved.id, -withdrawal.amount), Leg(nominal.id, withdrawal.amount)],
                     description="paid out to the bank", details={"withdrawal_id": str(withdrawal.id)})
    withdrawal.status = "paid"
    withdrawal.decided_by = operator_id
    withdrawal.decided_at = _now()
    if bank_reference:
        withdrawal.bank_reference = bank_reference
    session.flush()
    return withdrawal


def reject_withdrawal(session: Session, withdrawal_id: uuid.UUID, operator_id: uuid.UUID,
                      reason: str) -> Withdrawal:
    """The payout will not happen: the reservation goes back to available. Idempotent."""
    withdrawal: Withdrawal = _locked(session, Withdrawal, withdrawal_id, "withdrawal")
    if withdrawal.status == "rejected":
        return withdrawal
    if withdrawal.status != "pending":
        raise Conflict(f"withdrawal {withdrawal_id} is {withdrawal.status}; only a pending one can be rejected")
    available, reserved = wallet_accounts(session, withdrawal.wallet_id)
    post_transaction(session, key=f"withdrawal:{withdrawal.id}:release", kind="withdrawal_release",
                     legs=[Leg(reserved.id, -withdrawal.amount), Leg(available.id, withdrawal.amount)],
                     description="withdrawal rejected", details={"withdrawal_id": str(withdrawal.id)})
    withdrawal.status = "rejected"
    withdrawal.reason = reason
    withdrawal.decided_by = operator_id
    withdrawal.decided_at = _now()
    session.flush()
    return withdrawal
