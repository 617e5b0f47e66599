"""Reports over the whole ledger: the trial balance and its self-check."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.ledger import LedgerAccount, LedgerPosting
from models.ledger_reports import AccountLine, TrialBalance


def trial_balance(session: Session) -> TrialBalance:
    """Every account's balance beside the sum of its postings. The balances sum to zero and
    each equals its postings' sum, or the report says which account does not."""
    postings_sum = (
        select(LedgerPosting.account_id, func.sum(LedgerPosting.amount).label("total"), func.count().label("count"))
        .group_by(LedgerPosting.account_id)
        .subquery()
    )
    rows = session.execute(
        select(LedgerAccount, func.coalesce(postings_sum.c.total, 0), func.coalesce(postings_sum.c.count, 0))
        .outerjoin(postings_sum, postings_sum.c.account_id == LedgerAccount.id)
        .order_by(LedgerAccount.id)
    ).all()
    lines = [
        AccountLine(
            code=account.code,
            kind=account.kind,
            currency=account.currency,
            balance=account.balance,
            postings_total=Decimal(total),
            postings=int(count),
        )
        for account, total, count in rows
    ]
    total = sum((line.balance for line in lines), Decimal("0.00"))
    mismatched = [line.code for line in lines if line.balance != line.postings_total]
    by_kind: dict[str, Decimal] = {}
    for line in lines:
        by_kind[line.kind] = by_kind.get(line.kind, Decimal("0.00")) + line.balance
    return TrialBalance(
        total=total,
        balanced=(total == 0 and not mismatched),
        mismatched_accounts=mismatched,
        totals_by_kind=by_kind,
        accounts=lines,
    )
