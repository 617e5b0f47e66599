"""Reports over the whole ledger: the trial balance and its self-check, the reserve fund."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Subquery, func, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from domain.money import ZERO
from ledger.accounts import platform_account_code
from models.ledger import LedgerAccount, LedgerPosting
from models.ledger_reports import AccountLine, ReconciliationResult, ReserveFund, TrialBalance
from models.loan_status import LoanStatus
from models.loans import Investment, InvestmentInstallment, LoanRequest


def _postings_by_account() -> Subquery:
    """Each account's postings: their sum (total) and their count, by account_id."""
    return (
        select(LedgerPosting.account_id, func.sum(LedgerPosting.amount).label("total"), func.count().label("count"))
        .group_by(LedgerPosting.account_id)
        .subquery()
    )


def _balanced(total: Decimal, mismatched_accounts: list[str]) -> bool:
    """The ledger balances: its accounts sum to zero and each is the sum of its postings."""
    return total == 0 and not mismatched_accounts


def trial_balance(session: Session) -> TrialBalance:
    """Every account's balance beside the sum of its postings. The balances sum to zero and
    each equals its postings' sum, or the report says which account does not. One line per
    account: for a reader who asked for them all (the back office); the periodic check that
    needs only the verdict is reconciliation()."""
    postings_sum = _postings_by_account()
    rows = session.execute(
        select(
            LedgerAccount.code,
            LedgerAccount.kind,
            LedgerAccount.currency,
            LedgerAccount.balance,
            func.coalesce(postings_sum.c.total, 0),
            func.coalesce(postings_sum.c.count, 0),
        )
        .outerjoin(postings_sum, postings_sum.c.account_id == LedgerAccount.id)
        .order_by(LedgerAccount.id)
    ).all()
    lines = [
        AccountLine(
            code=code,
            kind=kind,
            currency=currency,
            balance=balance,
            postings_total=Decimal(total),
            postings=int(count),
        )
        for code, kind, currency, balance, total, count in rows
    ]
    total = sum((line.balance for line in lines), Decimal("0.00"))
    mismatched = [line.code for line in lines if line.balance != line.postings_total]
    by_kind: dict[str, Decimal] = {}
    for line in lines:
        by_kind[line.kind] = by_kind.get(line.kind, Decimal("0.00")) + line.balance
    return TrialBalance(
        total=total,
        balanced=_balanced(total, mismatched),
        mismatched_accounts=mismatched,
        totals_by_kind=by_kind,
        accounts=lines,
    )


def reconciliation(session: Session) -> ReconciliationResult:
    """The trial balance's verdict (trial_balance), as the database computes it in one
    statement, one snapshot: the count of accounts, their total, and the codes of those whose
    balance is not the sum of their postings. It reads one row however many accounts the ledger
    has. (The hourly check used to load every account as an object and a line: its memory grew
    with the platform's wallets, 62 MiB more at its peak for 20,003 accounts, in a process of
    its own.)"""
    postings_sum = _postings_by_account()
    mismatched = LedgerAccount.balance != func.coalesce(postings_sum.c.total, 0)
    accounts, total, codes = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(LedgerAccount.balance), ZERO),
            func.array_agg(aggregate_order_by(LedgerAccount.code, LedgerAccount.id)).filter(mismatched),
        ).outerjoin(postings_sum, postings_sum.c.account_id == LedgerAccount.id)
    ).one()
    mismatched_accounts = list(codes or [])
    return ReconciliationResult(
        balanced=_balanced(total, mismatched_accounts),
        total=total,
        accounts=accounts,
        mismatched_accounts=mismatched_accounts,
    )


def reserve_fund(session: Session, currency: str = "RUB") -> ReserveFund:
    """The fund's balance, the cover it has paid on defaults (loans/defaults.py writes each
    investment's share on the investment), and the investors' principal still outstanding in
    active loans: what a default could ask the fund to cover. Read-only: a currency without a
    fund reads as an empty one (nothing is opened)."""
    balance = session.scalar(
        select(LedgerAccount.balance).where(LedgerAccount.code == platform_account_code("reserve_fund", currency))
    )
    covered_total, covered_investments = session.execute(
        select(func.coalesce(func.sum(Investment.reserve_cover_amount), ZERO), func.count())
        .join(LoanRequest, LoanRequest.id == Investment.loan_id)
        .where(Investment.reserve_cover_amount > 0, LoanRequest.currency == currency)
    ).one()
    # An investment's principal over the loan's life is what it lent (domain/investor_shares.py):
    # what it is still owed is its amount less what it sold and the principal it has received.
    received = (
        select(
            InvestmentInstallment.investment_id,
            func.sum(InvestmentInstallment.received_principal).label("principal"),
        )
        .where(InvestmentInstallment.loan_id.in_(select(LoanRequest.id).where(LoanRequest.status == LoanStatus.active)))
        .group_by(InvestmentInstallment.investment_id)
        .subquery()
    )
    outstanding, loans = session.execute(
        select(
            func.coalesce(
                func.sum(Investment.amount - Investment.sold_principal - func.coalesce(received.c.principal, ZERO)),
                ZERO,
            ),
            func.count(func.distinct(Investment.loan_id)),
        )
        .join(LoanRequest, LoanRequest.id == Investment.loan_id)
        .outerjoin(received, received.c.investment_id == Investment.id)
        .where(
            Investment.status == "active",
            LoanRequest.status == LoanStatus.active,
            LoanRequest.currency == currency,
        )
    ).one()
    return ReserveFund(
        currency=currency,
        balance=balance if balance is not None else ZERO,
        covered_total=covered_total,
        covered_investments=covered_investments,
        outstanding_principal=outstanding,
        loans_protected=loans,
    )
