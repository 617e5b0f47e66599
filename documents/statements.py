"""The monthly investor statement: opening balance, every movement of the month, closing
balance, from the ledger. A month is statemented once it has ended (UTC); "generated at" is
the first instant after it, so a regenerated statement has the same bytes.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from core.errors import InvalidRequest
from core.settings import Settings
from documents.agreements import platform_context
from documents.register import register_document
from documents.render import render_pdf
from documents.store import DocumentStore
from domain.money import ZERO
from ledger.accounts import wallet_accounts
from ledger.wallets import wallet_statement
from models.ledger import LedgerAccount, LedgerPosting, LedgerTransaction, Wallet
from models.records import Document
from models.users import User

INVESTOR_STATEMENT = "investor_statement"
MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
MAX_LINES = 100_000


def month_bounds(month: str) -> tuple[datetime, datetime]:
    match = MONTH.match(month)
    if match is None:
        raise InvalidRequest("a month is written YYYY-MM", field="month")
    year, number = int(match.group(1)), int(match.group(2))
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + (number == 12), number % 12 + 1, 1, tzinfo=UTC)
    return start, end


def previous_month(today: date) -> str:
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def statement_context(
    session: Session, settings: Settings, investor: User, wallet: Wallet, month: str
) -> dict[str, Any]:
    start, end = month_bounds(month)
    before = wallet_statement(session, wallet.id, limit=1, until=start)
    opening = before[0].balance_after if before else ZERO
    lines = list(reversed(wallet_statement(session, wallet.id, limit=MAX_LINES, since=start, until=end)))
    closing_reserved = lines[-1].reserved_after if lines else (before[0].reserved_after if before else ZERO)
    summary: dict[str, list[Any]] = defaultdict(lambda: [0, ZERO])
    for line in lines:
        summary[line.kind][0] += 1
        summary[line.kind][1] += line.amount
    available, _ = wallet_accounts(session, wallet.id)
    return {
        "platform": platform_context(settings),
        "generated_at": end.strftime("%Y-%m-%d %H:%M:%S"),
        "month": month,
        "period_start": start.date().isoformat(),
        "period_end": date.fromordinal(end.date().toordinal() - 1).isoformat(),
        "investor": {"id": investor.id, "email": investor.email},
        "currency": available.currency,
        "opening": opening,
        "closing": lines[-1].balance_after if lines else opening,
        "closing_reserved": closing_reserved,
        "summary": [
            {"kind": kind.replace("_", " "), "count": count, "amount": amount}
            for kind, (count, amount) in sorted(summary.items())
        ],
        "lines": [
            {
                "at": line.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
                "description": line.description or line.kind.replace("_", " "),
                "loan_id": line.loan_id,
                "available": line.available_change,
                "reserved": line.reserved_change,
                "balance_after": line.balance_after,
            }
            for line in lines
        ],
    }


def investors_to_statement(
    session: Session, month: str, after: uuid.UUID | None = None, limit: int = 500
) -> list[uuid.UUID]:
    """Investors whose wallet had any movement before the month ended (so possibly a
    balance in it). In id order, from `after` (a batch cursor)."""
    _, end = month_bounds(month)
    moved = exists().where(
        LedgerPosting.account_id == LedgerAccount.id,
        LedgerPosting.transaction_id == LedgerTransaction.id,
        LedgerTransaction.created_at < end,
    )
    query = (
        select(User.id)
        .join(Wallet, Wallet.user_id == User.id)
        .join(LedgerAccount, LedgerAccount.wallet_id == Wallet.id)
        .where(User.role == "investor", moved)
        .group_by(User.id)
        .order_by(User.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(User.id > after)
    return list(session.scalars(query))


def generate_investor_statement(
    session: Session, store: DocumentStore, settings: Settings, investor_id: uuid.UUID, month: str, *, now: datetime
) -> Document:
    _, end = month_bounds(month)
    if end > now:
        raise InvalidRequest(f"{month} has not ended yet: a statement covers a whole month", field="month")
    investor = session.get_one(User, investor_id)
    wallet = session.scalars(select(Wallet).where(Wallet.user_id == investor_id)).one()
    document, _ = register_document(
        session,
        store,
        kind=INVESTOR_STATEMENT,
        subject_key=f"investor:{investor_id}:{month}",
        loan_id=None,
        owner_id=investor_id,
        render=lambda: render_pdf(
            "investor_statement.html", statement_context(session, settings, investor, wallet, month)
        ),
    )
    return document
