"""An investor's portfolio: what they lent, what came back, what is still due to them and when,
what defaults cost them, and the realised annual return (XIRR).

Read from the read side (models/loans.py), which the loan's activities keep in step with the
ledger, figure for figure:
- received principal, interest and late fees: each investment's parts of each installment
  (`investment_installments`), which every collection pays (loans/investor_shares.py) in the
  same database transaction as the postings to the investor's wallet;
- reserve cover and loss: `investments.reserve_cover_amount` and `loss_amount`, written by the
  default (loans/defaults.py) in the transaction that posts the reserve fund's cover;
- outstanding principal: while the loan is paid out and running (the investment `active`),
  what it lent less the principal it got back (over a loan's life an investment's principal is
  exactly what it lent, domain/investor_shares.py); otherwise nothing: a loan still funding has
  not lent it yet, a repaid one paid it all, and a defaulted one's became cover and loss.
Released reservations (a loan that was not funded) are no holdings at all and are left out.

The realised return (`realised_flows`, then domain/xirr.py, actual/365) counts, per holding:
- the amount lent, out, on the day the loan was paid out (`disbursed_at`); holdings in loans
  not paid out yet lend nothing yet and are left out of the return; a holding bought on the
  secondary market: what it cost (price + accrued interest), out, the day it was bought;
- what a sale on the secondary market brought in (after the fee), in, the day of the trade;
- every receipt (principal, interest and late fee of each installment), in, on the day the
  collection that settled the installment ran (`repayment_schedule.paid_at`: the same
  collection pays the investors). Parts paid before the installment was settled (partial
  payments) are counted on the day it was settled; those of an installment never settled, on
  the day the loan closed (a default wrote it off) or today (still open). Never before the
  money arrived: partial payments can make the return look lower than it was, never higher;
- the reserve fund's cover, in, on the day the loan defaulted (`closed_at`: the default posts
  the cover in the same transaction);
- the outstanding principal of running loans, in, today, at par (as if sold at face value);
  a defaulted loan's unrecovered principal counts as nothing: that is the loss.
Days are calendar days in the platform's time zone (PLATFORM_TIME_ZONE), as due dates are.
The dates are the loan's own (disbursed_at, paid_at, closed_at: the workflow's time, as the
schedule keeps it), never the ledger's clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from domain.calendar import day_of
from domain.investor_shares import Entitlement, split_installment_payment
from domain.money import ZERO
from domain.xirr import xirr
from ledger.accounts import wallet_of_user
from loans.investor_shares import HOLDING_STATUSES, agreed_shares_of
from models.loan_status import LoanStatus
from models.loans import Investment, InvestmentInstallment, LoanRequest, RepaymentInstallment
from models.market import MarketTrade

PERCENT = Decimal("0.01")
# Installments nothing more will be collected on.
_SETTLED = ("paid", "written_off")


@dataclass(frozen=True)
class Part:
    """One investment's part of one installment: its agreed figures, what it has received, and
    where the installment stands on the loan's schedule."""

    investment_id: uuid.UUID
    payment_num: int
    principal: Decimal
    interest: Decimal
    received_principal: Decimal
    received_interest: Decimal
    received_fee: Decimal
    due_date: date
    installment_status: str
    paid_at: datetime | None

    @property
    def received(self) -> Decimal:
        return self.received_principal + self.received_interest + self.received_fee


@dataclass(frozen=True)
class Holding:
    investment_id: uuid.UUID
    loan_id: uuid.UUID
    loan_status: LoanStatus
    grade: str | None
    rate_annual: Decimal | None
    amount: Decimal
    investment_status: str
    outstanding_principal: Decimal
    received_principal: Decimal
    received_interest: Decimal
    received_fees: Decimal
    # None unless the loan defaulted (then cover + loss is what it was still owed).
    loss_amount: Decimal | None
    reserve_cover_amount: Decimal | None
    created_at: datetime
    disbursed_at: datetime | None
    closed_at: datetime | None
    # The secondary market: a bought holding's cost and when it was bought (its money out,
    # instead of the loan's disbursement), and what its sales brought in, when.
    bought: tuple[datetime, Decimal] | None = None
    sales: tuple[tuple[datetime, Decimal], ...] = ()


@dataclass(frozen=True)
class Bucket:
    """Holdings grouped by one key (a loan status or a grade)."""

    key: str | None
    count: int
    invested: Decimal
    outstanding_principal: Decimal


@dataclass(frozen=True)
class MonthDue:
    month: str  # "YYYY-MM"
    principal: Decimal
    interest: Decimal

    @property
    def total(self) -> Decimal:
        return self.principal + self.interest


@dataclass(frozen=True)
class Portfolio:
    currency: str
    invested_total: Decimal
    outstanding_principal: Decimal
    received_principal: Decimal
    received_interest: Decimal
    received_fees: Decimal
    losses: Decimal
    reserve_cover: Decimal
    xirr_percent: Decimal | None
    by_status: list[Bucket]
    by_grade: list[Bucket]
    holdings: list[Holding]
    expected_cash_flow: list[MonthDue]


# -- reading ---------------------------------------------------------------------------------


def investor_portfolio(session: Session, investor_id: uuid.UUID, *, now: datetime, time_zone: str) -> Portfolio:
    """The investor's whole portfolio as of `now` (its day in `time_zone` is "today")."""
    currency = wallet_of_user(session, investor_id).currency
    rows = session.execute(
        select(Investment, *_LOAN_FIGURES)
        .join(LoanRequest, LoanRequest.id == Investment.loan_id)
        .where(Investment.investor_id == investor_id, Investment.status != "released")
        .order_by(Investment.created_at.desc(), Investment.id.desc())
    ).all()
    parts = _stored_parts(session, investor_id)
    stored = {p.investment_id for p in parts}
    # Loans paid out before each investment's parts were stored (stored at their next collection).
    unstored = {
        investment.loan_id
        for investment, *_ in rows
        if investment.status in HOLDING_STATUSES and investment.id not in stored
    }
    mine = {investment.id for investment, *_ in rows}
    for loan_id in sorted(unstored):
        parts += _derived_parts(session, loan_id, mine)
    by_investment: dict[uuid.UUID, list[Part]] = {}
    for part in parts:
        by_investment.setdefault(part.investment_id, []).append(part)
    bought, sales = _trades(session, mine)
    holdings = [
        _holding(
            investment,
            _Loan(status, grade, rate, disbursed_at, closed_at),
            by_investment.get(investment.id, []),
            bought.get(investment.id),
            tuple(sales.get(investment.id, ())),
        )
        for investment, status, grade, rate, disbursed_at, closed_at in rows
    ]
    return summarise(currency, holdings, parts, today=day_of(now, time_zone), time_zone=time_zone)


def _trades(
    session: Session, investment_ids: set[uuid.UUID]
) -> tuple[dict[uuid.UUID, tuple[datetime, Decimal]], dict[uuid.UUID, list[tuple[datetime, Decimal]]]]:
    """What each of these holdings cost on the market, and what each sale of them brought in."""
    bought: dict[uuid.UUID, tuple[datetime, Decimal]] = {}
    sales: dict[uuid.UUID, list[tuple[datetime, Decimal]]] = {}
    if not investment_ids:
        return bought, sales
    for trade in session.scalars(
        select(MarketTrade).where(
            MarketTrade.buyer_investment_id.in_(investment_ids) | MarketTrade.seller_investment_id.in_(investment_ids)
        )
    ):
        if trade.buyer_investment_id in investment_ids:
            bought[trade.buyer_investment_id] = (trade.traded_at, trade.buyer_pays)
        if trade.seller_investment_id in investment_ids:
            sales.setdefault(trade.seller_investment_id, []).append((trade.traded_at, trade.seller_gets))
    return bought, sales


def _stored_parts(session: Session, investor_id: uuid.UUID) -> list[Part]:
    rows = session.execute(
        select(
            InvestmentInstallment.investment_id,
            InvestmentInstallment.payment_num,
            InvestmentInstallment.principal,
            InvestmentInstallment.interest,
            InvestmentInstallment.received_principal,
            InvestmentInstallment.received_interest,
            InvestmentInstallment.received_fee,
            RepaymentInstallment.due_date,
            RepaymentInstallment.status,
            RepaymentInstallment.paid_at,
        )
        .join(Investment, Investment.id == InvestmentInstallment.investment_id)
        .join(
            RepaymentInstallment,
            and_(
                RepaymentInstallment.loan_id == InvestmentInstallment.loan_id,
                RepaymentInstallment.payment_num == InvestmentInstallment.payment_num,
            ),
        )
        .where(Investment.investor_id == investor_id, Investment.status != "released")
        .order_by(InvestmentInstallment.investment_id, InvestmentInstallment.payment_num)
    ).all()
    return [Part(*tuple(row)) for row in rows]


def _derived_parts(session: Session, loan_id: uuid.UUID, mine: set[uuid.UUID]) -> list[Part]:
    """A loan paid out before investments' parts were stored: the parts as the same rule
    decides them (agreed_shares_of), and what the schedule says was paid, split as the loan's
    next collection will store it (as if each installment was paid at once, like its
    backfill), without writing: readers only read."""
    try:
        shares = agreed_shares_of(session, loan_id)
    except ValueError:  # investments that do not add up to the schedule: nothing to split
        return []
    if not shares.keys() & mine:
        return []
    agreed = {k: {s.payment_num: s for s in v} for k, v in shares.items()}
    schedule = session.scalars(
        select(RepaymentInstallment)
        .where(RepaymentInstallment.loan_id == loan_id)
        .order_by(RepaymentInstallment.payment_num)
    ).all()
    parts: list[Part] = []
    for row in schedule:
        standing = {k: Entitlement(agreed[k][row.payment_num], ZERO, ZERO) for k in shares}
        receipts = split_installment_payment(row.paid_principal, row.paid_interest, row.late_fee_paid, standing)
        for investment_id in shares:
            if investment_id not in mine:
                continue
            share, receipt = agreed[investment_id][row.payment_num], receipts[investment_id]
            parts.append(
                Part(
                    investment_id,
                    row.payment_num,
                    share.principal,
                    share.interest,
                    receipt.principal,
                    receipt.interest,
                    receipt.fee,
                    row.due_date,
                    row.status,
                    row.paid_at,
                )
            )
    return parts


# What a holding shows of its loan (not the whole row: its scoring details are large).
_LOAN_FIGURES = (
    LoanRequest.status,
    LoanRequest.risk_grade,
    LoanRequest.rate_annual,
    LoanRequest.disbursed_at,
    LoanRequest.closed_at,
)


@dataclass(frozen=True)
class _Loan:
    status: LoanStatus
    risk_grade: str | None
    rate_annual: Decimal | None
    disbursed_at: datetime | None
    closed_at: datetime | None


def _holding(
    investment: Investment,
    loan: _Loan,
    own: Sequence[Part],
    bought: tuple[datetime, Decimal] | None = None,
    sales: tuple[tuple[datetime, Decimal], ...] = (),
) -> Holding:
    received_principal = sum((p.received_principal for p in own), ZERO)
    # (what it sold on the market is no longer its to receive)
    owed = investment.amount - investment.sold_principal - received_principal
    return Holding(
        investment_id=investment.id,
        loan_id=investment.loan_id,
        loan_status=loan.status,
        grade=loan.risk_grade,
        rate_annual=loan.rate_annual,
        amount=investment.amount,
        investment_status=investment.status,
        outstanding_principal=owed if investment.status == "active" else ZERO,
        received_principal=received_principal,
        received_interest=sum((p.received_interest for p in own), ZERO),
        received_fees=sum((p.received_fee for p in own), ZERO),
        loss_amount=investment.loss_amount,
        reserve_cover_amount=investment.reserve_cover_amount,
        created_at=investment.created_at,
        disbursed_at=loan.disbursed_at,
        closed_at=loan.closed_at,
        bought=bought,
        sales=sales,
    )


# -- the figures (pure) ----------------------------------------------------------------------


def summarise(
    currency: str, holdings: Sequence[Holding], parts: Sequence[Part], *, today: date, time_zone: str
) -> Portfolio:
    """Totals, groups, what is still due by month and the realised return, from the holdings
    and their installments' parts (no I/O)."""
    rate = xirr(realised_flows(holdings, parts, today=today, time_zone=time_zone))
    return Portfolio(
        currency=currency,
        invested_total=_sum(h.amount for h in holdings),
        outstanding_principal=_sum(h.outstanding_principal for h in holdings),
        received_principal=_sum(h.received_principal for h in holdings),
        received_interest=_sum(h.received_interest for h in holdings),
        received_fees=_sum(h.received_fees for h in holdings),
        losses=_sum(h.loss_amount or ZERO for h in holdings),
        reserve_cover=_sum(h.reserve_cover_amount or ZERO for h in holdings),
        xirr_percent=None if rate is None else (rate * 100).quantize(PERCENT, rounding=ROUND_HALF_UP),
        by_status=_buckets(holdings, lambda h: h.loan_status.value, order=[s.value for s in LoanStatus]),
        by_grade=_buckets(holdings, lambda h: h.grade, order=["A", "B", "C", "D", "E"]),
        holdings=list(holdings),
        expected_cash_flow=expected_cash_flow(holdings, parts),
    )


def realised_flows(
    holdings: Sequence[Holding], parts: Sequence[Part], *, today: date, time_zone: str
) -> list[tuple[date, Decimal]]:
    """The dated money the realised return is computed on: see the module's docstring."""
    by_investment: dict[uuid.UUID, list[Part]] = {}
    for part in parts:
        by_investment.setdefault(part.investment_id, []).append(part)
    flows: list[tuple[date, Decimal]] = []
    for holding in holdings:
        if holding.bought is not None:  # bought on the market: its cost, the day it was bought
            flows.append((day_of(holding.bought[0], time_zone), -holding.bought[1]))
        elif holding.disbursed_at is None:
            continue  # not lent yet
        else:
            flows.append((day_of(holding.disbursed_at, time_zone), -holding.amount))
        for sold_at, proceeds in holding.sales:  # what its sales brought in
            flows.append((day_of(sold_at, time_zone), proceeds))
        closed = day_of(holding.closed_at, time_zone) if holding.closed_at is not None else today
        for part in by_investment.get(holding.investment_id, []):
            if part.received:
                paid = day_of(part.paid_at, time_zone) if part.paid_at is not None else closed
                flows.append((paid, part.received))
        if holding.reserve_cover_amount:
            flows.append((closed, holding.reserve_cover_amount))
        if holding.outstanding_principal:
            flows.append((today, holding.outstanding_principal))
    return flows


def expected_cash_flow(holdings: Sequence[Holding], parts: Sequence[Part]) -> list[MonthDue]:
    """What running loans still owe the investor, by the month each installment is due (an
    overdue one in its own, past, month): each unsettled installment's agreed part less what
    it has received of it. Its principal adds up to the outstanding principal."""
    running = {h.investment_id for h in holdings if h.investment_status == "active"}
    months: dict[str, tuple[Decimal, Decimal]] = {}
    for part in parts:
        if part.investment_id not in running or part.installment_status in _SETTLED:
            continue
        principal = part.principal - part.received_principal
        interest = part.interest - part.received_interest
        if principal or interest:
            month = f"{part.due_date:%Y-%m}"
            before = months.get(month, (ZERO, ZERO))
            months[month] = (before[0] + principal, before[1] + interest)
    return [MonthDue(month, principal, interest) for month, (principal, interest) in sorted(months.items())]


def _sum(values: Iterable[Decimal]) -> Decimal:
    return sum(values, ZERO)


def _buckets(
    holdings: Sequence[Holding], key_of: Callable[[Holding], str | None], order: Sequence[str]
) -> list[Bucket]:
    """One bucket per key present, in `order` (then no key: a loan not graded yet)."""
    groups: dict[str | None, list[Holding]] = {}
    for holding in holdings:
        groups.setdefault(key_of(holding), []).append(holding)
    rank: Mapping[str | None, int] = {key: n for n, key in enumerate(order)}
    return [
        Bucket(
            key=key,
            count=len(group),
            invested=_sum(h.amount for h in group),
            outstanding_principal=_sum(h.outstanding_principal for h in group),
        )
        for key, group in sorted(groups.items(), key=lambda item: (rank.get(item[0], len(order)), item[0] or ""))
    ]
