"""Direct (no HTTP) helpers for ledger tests: users with wallets, funding, snapshots."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ledger.accounts import ensure_platform_accounts, open_wallet, wallet_accounts
from ledger.cash import confirm_deposit, request_deposit
from models.ledger import LedgerAccount, LedgerPosting, LedgerTransaction, Wallet
from models.ledger_reports import ReconciliationResult, TrialBalance
from models.users import User


def new_user(session: Session, role: str = "investor") -> User:
    user = User(email=f"{role}-{uuid.uuid4().hex[:10]}@example.com", password_hash="x", role=role)
    session.add(user)
    session.flush()
    return user


def new_wallet(session: Session, role: str = "investor") -> Wallet:
    ensure_platform_accounts(session)
    return open_wallet(session, new_user(session, role).id, role)


def fund(session: Session, wallet: Wallet, amount: Decimal) -> None:
    operator = new_user(session, "operator")
    deposit, _ = request_deposit(session, wallet.user_id, amount)
    confirm_deposit(session, deposit.id, operator.id)


def account_ids(session: Session, wallet: Wallet) -> tuple[int, int]:
    available, reserved = wallet_accounts(session, wallet.id)
    return available.id, reserved.id


def balances(session: Session) -> dict[str, Decimal]:
    return {
        row.code: row.balance
        for row in session.scalars(select(LedgerAccount).execution_options(populate_existing=True))
    }


def snapshot(session: Session) -> dict[str, object]:
    """Everything a replay must leave unchanged."""
    return {
        "balances": balances(session),
        "transactions": session.scalar(select(func.count()).select_from(LedgerTransaction)),
        "postings": session.scalar(select(func.count()).select_from(LedgerPosting)),
        "last_posting": session.scalar(select(func.max(LedgerPosting.id))),
        "deposits": session.scalar(text("SELECT count(*) FROM deposits")),
        "withdrawals": session.scalar(text("SELECT count(*) FROM withdrawals")),
    }


def assert_books_balance(session: Session) -> None:
    from ledger.reports import reconciliation, trial_balance

    report = trial_balance(session)
    assert report.total == 0, report
    assert report.mismatched_accounts == [], report
    assert all(line.balance >= 0 for line in report.accounts if line.kind != "nominal"), report
    # The hourly check's verdict (computed by the database) is the trial balance's.
    assert verdict_of(reconciliation(session)) == verdict_of(report)


def verdict_of(report: TrialBalance | ReconciliationResult) -> tuple[bool, str, int, list[str]]:
    """A trial balance's or a reconciliation's verdict, to compare them (the total as text: its
    scale too)."""
    accounts = len(report.accounts) if isinstance(report, TrialBalance) else report.accounts
    return report.balanced, str(report.total), accounts, report.mismatched_accounts
