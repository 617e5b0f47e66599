"""Read-side helpers the loan services share: the loan row, its investments, a wallet's
available account, notifications."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from core.db import loan_lock_held, lock_loan_row
from core.errors import NotFound
from domain.allocation import Holding
from ledger.accounts import wallet_accounts, wallet_of_user
from models.ledger import LedgerAccount
from models.loans import Investment, LoanRequest, Notification


def notify(
    session: Session, user_id: uuid.UUID, loan_id: uuid.UUID | None, kind: str, message: str, dedupe_key: str
) -> None:
    session.execute(
        pg_insert(Notification)
        .values(user_id=user_id, loan_id=loan_id, kind=kind, message=message, dedupe_key=dedupe_key)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
    )


def loan_row(session: Session, loan_id: uuid.UUID, lock: bool = False) -> LoanRequest:
    # FOR NO KEY UPDATE: the same lock the audit chain takes, and it does not wait on the
    # foreign-key locks of postings being written for this loan.
    loan: LoanRequest | None
    if not lock:
        loan = session.get(LoanRequest, loan_id)
    elif loan_lock_held(session, loan_id):
        # Held already (perhaps by the audit chain's lock, which reads the id only): the row as
        # it is under the lock, not an object the session loaded before it.
        loan = session.get(LoanRequest, loan_id, populate_existing=True)
    else:
        query = select(LoanRequest).where(LoanRequest.id == loan_id).with_for_update(key_share=True)
        loan = lock_loan_row(session, query.execution_options(populate_existing=True), loan_id)
    if loan is None:
        raise NotFound(f"no loan {loan_id}")
    return loan


def investments_of(session: Session, loan_id: uuid.UUID, status: str | tuple[str, ...] = "active") -> list[Investment]:
    statuses = (status,) if isinstance(status, str) else status
    return list(
        session.scalars(
            select(Investment)
            .where(Investment.loan_id == loan_id, Investment.status.in_(statuses))
            .order_by(Investment.created_at, Investment.id)
        )
    )


def holdings(investments: list[Investment]) -> list[Holding]:
    return [Holding(investment_id=i.id, investor_id=i.investor_id, amount=i.amount) for i in investments]


def available_account_of(session: Session, user_id: uuid.UUID) -> LedgerAccount:
    return wallet_accounts(session, wallet_of_user(session, user_id).id)[0]
