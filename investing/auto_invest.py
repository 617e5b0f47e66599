"""Auto-invest on the database side: investors' rules, what a run may plan with (loans open
for funding, each investor's budget and limits), and the record of every allocation.

The rules of matching and fair sharing are in domain/auto_invest.py. Nothing here creates
an investment: a run's plan is placed through each loan workflow's `invest` update (a
market purchase: its `trade` update).

reinvest_returns, precisely: with it on, auto-invest may spend all the available money.
With it off, it spends only money the investor deposited and has never lent:
    deposits confirmed - withdrawals requested (not rejected) - investments (not released),
never more than what is available. Money that came back from loans (installments, early
repayments, reserve-fund cover, what a sale on the market brought) is left for the investor
to withdraw or invest by hand; a manual investment counts against the deposited money first.
A holding bought on the market counts as lent what its purchase cost (price + accrued
interest), not its principal.

The secondary market: a run over every funding loan (the Schedule's) also plans over every
open listing, after the funding loans, with the same budgets; its purchases go through each
loan workflow's `trade` update, under a trade id decided from the run, the listing and the
investor, so a retried placement never buys twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Select, func, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from core.errors import NotFound
from core.settings import PLATFORM_TIME_ZONE
from domain.auto_invest import (
    AutoInvestRule,
    FundingLoan,
    InvestorPosition,
    ListingOffer,
    PlannedInvestment,
    plan,
    plan_market,
)
from domain.calendar import day_of
from domain.investment_rules import investor_cap
from domain.money import ZERO, round_money
from investing.annual_limit import ANNUAL_LIMIT, limit_year
from investing.market import listing_view
from models.auto_invest import AutoInvestAllocation, AutoInvestRuleRow, AutoInvestRun, InvestorYearTotal
from models.ledger import Deposit, LedgerAccount, Wallet, Withdrawal
from models.loan_status import LoanStatus
from models.loans import Investment, InvestmentInstallment, LoanRequest
from models.market import MarketListing, MarketTrade
from models.products import LoanProduct
from models.users import User

ALLOCATION_NAMESPACE = uuid.UUID("0b6f4d1e-2c39-4d7a-8f43-5a9e3c1d2b77")
# The most open listings one run plans over; the next run's window starts after its last.
MAX_LISTINGS_PER_RUN = 2000


def get_rule(session: Session, investor_id: uuid.UUID) -> AutoInvestRuleRow:
    rule = session.get(AutoInvestRuleRow, investor_id)
    if rule is None:
        raise NotFound("no auto-invest rule yet: PUT /v1/auto-invest/rule")
    return rule


def put_rule(session: Session, investor_id: uuid.UUID, values: dict) -> AutoInvestRuleRow:
    rule = session.get(AutoInvestRuleRow, investor_id, with_for_update=True)
    now = datetime.now(UTC)
    if rule is None:
        rule = AutoInvestRuleRow(investor_id=investor_id, **values, updated_at=now)
        session.add(rule)
    else:
        for name, value in values.items():
            setattr(rule, name, value)
        rule.updated_at = now
    session.flush()
    return rule


def funding_loans(session: Session, loan_ids: list[uuid.UUID] | None) -> tuple[list[FundingLoan], dict[uuid.UUID, str]]:
    """Loans open for investment, oldest deadline first, and their workflow ids (the columns
    the plan needs, not whole rows: the Schedule's run reads every funding loan)."""
    query = (
        select(
            LoanRequest.id,
            LoanRequest.amount,
            LoanRequest.funded_amount,
            LoanRequest.rate_annual,
            LoanRequest.risk_grade,
            LoanRequest.term_months,
            LoanRequest.workflow_id,
            LoanProduct.min_investment,
            LoanProduct.max_investor_share_percent,
        )
        .join(LoanProduct, LoanProduct.id == LoanRequest.product_id)
        .where(
            LoanRequest.status == LoanStatus.funding,
            LoanRequest.funded_amount < LoanRequest.amount,
            LoanRequest.risk_grade.is_not(None),
            LoanRequest.rate_annual.is_not(None),
        )
        .order_by(LoanRequest.funding_deadline, LoanRequest.id)
    )
    if loan_ids is not None:
        query = query.where(LoanRequest.id.in_(loan_ids))
    loans, workflows = [], {}
    for row in session.execute(query):
        loans.append(
            FundingLoan(
                loan_id=row.id,
                amount=row.amount,
                remaining=row.amount - row.funded_amount,
                rate_annual=row.rate_annual,
                grade=row.risk_grade,
                term_months=row.term_months,
                min_investment=row.min_investment,
                max_per_investor=investor_cap(row.amount, row.max_investor_share_percent),
            )
        )
        workflows[row.id] = row.workflow_id
    return loans, workflows


MarketCursor = tuple[datetime, uuid.UUID]


def market_offers(
    session: Session, listing_ids: list[uuid.UUID] | None, at: datetime, after: MarketCursor | None = None
) -> tuple[list[ListingOffer], dict[uuid.UUID, str], MarketCursor | None]:
    """Open listings that can be bought today, each priced for all it still offers, their
    loans' workflow ids, and where the window ended. `listing_ids` None: every open listing,
    at most MAX_LISTINGS_PER_RUN of them, in the market's order (oldest first) from just after
    `after` (the last run's end), wrapping around to the oldest: listings no rule wants at the
    head of the market never hide the rest, and a listing closing between runs moves nothing."""
    # The platform's calendar day (the loan settles on its own: the cost may differ by a day's interest).
    today = day_of(at, PLATFORM_TIME_ZONE)
    query = (
        select(MarketListing)
        .where(MarketListing.status == "open", MarketListing.remaining_principal > 0)
        .order_by(MarketListing.created_at, MarketListing.id)
    )
    cursor = None
    if listing_ids is not None:
        chosen = list(session.scalars(query.where(MarketListing.id.in_(listing_ids)).limit(MAX_LISTINGS_PER_RUN)))
    else:
        chosen = _window(session, query, after)
        if chosen:  # where this window ended, in the rotation; then planned oldest first
            cursor = (chosen[-1].created_at, chosen[-1].id)
            chosen.sort(key=lambda listing: (listing.created_at, listing.id))
    offers, workflows = [], {}
    for listing in chosen:
        view = listing_view(session, listing, today)  # (None: not for sale today, by any rule)
        if view is None or view.grade is None or view.rate_annual is None:
            continue
        loan = session.get_one(LoanRequest, listing.loan_id)
        product = session.get_one(LoanProduct, loan.product_id)
        offers.append(
            ListingOffer(
                listing_id=listing.id,
                loan_id=loan.id,
                seller_id=listing.seller_id,
                loan_amount=loan.amount,
                available=listing.remaining_principal,
                price_percent=listing.price_percent,
                accrued=view.quote.accrued,
                rate_annual=view.rate_annual,
                grade=view.grade,
                remaining_installments=view.remaining_installments,
                min_investment=product.min_investment,
                max_per_investor=investor_cap(loan.amount, product.max_investor_share_percent),
            )
        )
        workflows[loan.id] = loan.workflow_id
    return offers, workflows, cursor


def _window(session: Session, query: Select[tuple[MarketListing]], after: MarketCursor | None) -> list[MarketListing]:
    """MAX_LISTINGS_PER_RUN of the ordered listings from just after `after`, then from the
    oldest, each once (a keyset, not an offset: listings closing between runs shift nothing).
    (A listing's created_at is its transaction's start: one committed while a run reads may
    sort behind the cursor and wait a cycle; it is late, never lost.)"""
    if after is None:
        return list(session.scalars(query.limit(MAX_LISTINGS_PER_RUN)))
    key = tuple_(MarketListing.created_at, MarketListing.id)
    window = list(session.scalars(query.where(key > tuple_(*after)).limit(MAX_LISTINGS_PER_RUN)))
    if len(window) < MAX_LISTINGS_PER_RUN:  # the end of the market reached: on from its start
        taken = {listing.id for listing in window}
        window += [
            listing
            for listing in session.scalars(query.where(key <= tuple_(*after)).limit(MAX_LISTINGS_PER_RUN - len(window)))
            if listing.id not in taken
        ]
    return window


def active_rules(session: Session) -> tuple[list[AutoInvestRule], dict[uuid.UUID, bool]]:
    rows = session.scalars(
        select(AutoInvestRuleRow).where(AutoInvestRuleRow.is_active).order_by(AutoInvestRuleRow.investor_id)
    )
    rules, reinvest = [], {}
    for row in rows:
        rules.append(
            AutoInvestRule(
                investor_id=row.investor_id,
                max_amount_per_loan=row.max_amount_per_loan,
                min_loan_amount=row.min_loan_amount,
                max_loan_amount=row.max_loan_amount,
                allowed_grades=frozenset(row.allowed_grades),
                min_rate=row.min_rate,
                max_term_months=row.max_term_months,
                max_portfolio_share_percent=row.max_portfolio_share_percent,
                buy_on_market=row.buy_on_market,
                max_market_premium_percent=row.max_market_premium_percent,
            )
        )
        reinvest[row.investor_id] = row.reinvest_returns
    return rules, reinvest


def _sums(session: Session, query) -> dict[uuid.UUID, Decimal]:
    return {investor: total for investor, total in session.execute(query)}


def positions(
    session: Session,
    investor_ids: list[uuid.UUID],
    reinvest: dict[uuid.UUID, bool],
    loan_ids: list[uuid.UUID],
    at: datetime,
) -> dict[uuid.UUID, InvestorPosition]:
    """Each investor's budget, portfolio value, annual limit left and holdings in the loans
    being planned (what each lent or bought there, less what it sold), in a handful of
    aggregate queries."""
    ids = list(investor_ids)
    if not ids:
        return {}
    balances: dict[uuid.UUID, dict[str, Decimal]] = {}
    for user_id, kind, balance in session.execute(
        select(Wallet.user_id, LedgerAccount.kind, LedgerAccount.balance)
        .join(LedgerAccount, LedgerAccount.wallet_id == Wallet.id)
        .where(Wallet.user_id.in_(ids), Wallet.type == "investor")
    ):
        balances.setdefault(user_id, {})[kind] = balance
    deposited = _sums(
        session,
        select(Deposit.user_id, func.sum(Deposit.amount))
        .where(Deposit.user_id.in_(ids), Deposit.status == "confirmed")
        .group_by(Deposit.user_id),
    )
    withdrawn = _sums(
        session,
        select(Withdrawal.user_id, func.sum(Withdrawal.amount))
        .where(Withdrawal.user_id.in_(ids), Withdrawal.status != "rejected")
        .group_by(Withdrawal.user_id),
    )
    lent = _sums(
        session,
        select(Investment.investor_id, func.sum(Investment.amount))
        .where(Investment.investor_id.in_(ids), Investment.status != "released", Investment.acquired_at.is_(None))
        .group_by(Investment.investor_id),
    )
    bought = _sums(  # a holding bought on the market: what it cost, not its principal
        session,
        select(MarketTrade.buyer_id, func.sum(MarketTrade.buyer_pays))
        .where(MarketTrade.buyer_id.in_(ids))
        .group_by(MarketTrade.buyer_id),
    )
    # A holding's principal still owed: what it lent or bought, less what it sold and the
    # principal it has received (its agreed parts; as ledger/reports.py counts it).
    received = (
        select(
            InvestmentInstallment.investment_id,
            func.sum(InvestmentInstallment.received_principal).label("principal"),
        )
        .join(Investment, Investment.id == InvestmentInstallment.investment_id)
        .where(Investment.investor_id.in_(ids), Investment.status == "active")
        .group_by(InvestmentInstallment.investment_id)
        .subquery()
    )
    outstanding = _sums(
        session,
        select(
            Investment.investor_id,
            func.sum(Investment.amount - Investment.sold_principal - func.coalesce(received.c.principal, ZERO)),
        )
        .outerjoin(received, received.c.investment_id == Investment.id)
        .where(Investment.investor_id.in_(ids), Investment.status == "active")
        .group_by(Investment.investor_id),
    )
    year = limit_year(at)
    qualified = set(session.scalars(select(User.id).where(User.id.in_(ids), User.is_qualified_investor)))
    counted = _sums(
        session,
        select(InvestorYearTotal.investor_id, InvestorYearTotal.invested).where(
            InvestorYearTotal.investor_id.in_(ids), InvestorYearTotal.year == year
        ),
    )
    in_loans: dict[uuid.UUID, dict[uuid.UUID, Decimal]] = {}
    if loan_ids:
        for investor_id, loan_id, amount in session.execute(
            select(Investment.investor_id, Investment.loan_id, func.sum(Investment.amount - Investment.sold_principal))
            .where(
                Investment.investor_id.in_(ids),
                Investment.loan_id.in_(loan_ids),
                Investment.status.in_(("pending", "active")),
            )
            .group_by(Investment.investor_id, Investment.loan_id)
        ):
            in_loans.setdefault(investor_id, {})[loan_id] = amount
    result = {}
    for investor_id in ids:
        wallet = balances.get(investor_id, {})
        available = wallet.get("wallet_available", ZERO)
        budget = available
        if not reinvest.get(investor_id, True):
            never_lent = (
                deposited.get(investor_id, ZERO)
                - withdrawn.get(investor_id, ZERO)
                - lent.get(investor_id, ZERO)
                - bought.get(investor_id, ZERO)
            )
            budget = max(min(available, never_lent), ZERO)
        value = available + wallet.get("wallet_reserved", ZERO) + outstanding.get(investor_id, ZERO)
        left = None if investor_id in qualified else max(ANNUAL_LIMIT - counted.get(investor_id, ZERO), ZERO)
        result[investor_id] = InvestorPosition(
            budget=budget,
            portfolio_value=round_money(value),
            annual_left=left,
            in_loan=dict(in_loans.get(investor_id, {})),
        )
    return result


@dataclass(frozen=True)
class RunPlan:
    run_no: int
    planned: list[PlannedInvestment]
    workflows: dict[uuid.UUID, str]
    # (loan, investor) -> the investment's id, for investments in funding loans
    investment_ids: dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID]
    # (listing, investor) -> the trade's id, for purchases on the market
    trade_ids: dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID] = field(default_factory=dict)


def trade_id_of(run_no: int, listing_id: uuid.UUID, investor_id: uuid.UUID) -> uuid.UUID:
    """The trade an auto-invest purchase places: the same for the same run, listing and
    investor (one rule per investor), so a retried placement is the same trade."""
    return uuid.uuid5(ALLOCATION_NAMESPACE, f"{run_no}:market:{listing_id}:{investor_id}")


def _planned_before(session: Session, run_no: int) -> RunPlan:
    rows = session.scalars(
        select(AutoInvestAllocation).where(AutoInvestAllocation.run_no == run_no).order_by(AutoInvestAllocation.id)
    ).all()
    return RunPlan(
        run_no,
        [
            PlannedInvestment(
                r.loan_id,
                r.investor_id,
                r.asked,
                r.allocated,
                r.reason,
                listing_id=r.listing_id,
                cost=Decimal(r.details["cost"]) if "cost" in r.details else None,
            )
            for r in rows
        ],
        {r.loan_id: r.details["workflow_id"] for r in rows},
        {(r.loan_id, r.investor_id): r.investment_id for r in rows if r.kind == "primary" and r.investment_id},
        {(r.listing_id, r.investor_id): r.trade_id for r in rows if r.kind == "market" and r.listing_id and r.trade_id},
    )


def plan_run(
    session: Session,
    run_key: str,
    loan_ids: list[uuid.UUID] | None,
    at: datetime,
    listing_ids: Sequence[uuid.UUID] | None = (),
) -> RunPlan:
    """Plans a run and records every allocation (asked, allocated, why) before anything is
    placed: the funding loans first, then the open listings (`listing_ids` None: every open
    listing; empty: none), each investor's budget and limits spent once across them all.
    The run number is the rotation's starting point: it moves on with each run. The same
    run_key again returns the plan already recorded."""
    run_no = session.execute(
        pg_insert(AutoInvestRun)
        .values(run_key=run_key)
        .on_conflict_do_nothing(index_elements=["run_key"])
        .returning(AutoInvestRun.run_no)
    ).scalar_one_or_none()
    if run_no is None:
        return _planned_before(
            session, session.scalars(select(AutoInvestRun.run_no).where(AutoInvestRun.run_key == run_key)).one()
        )
    rules, reinvest = active_rules(session)
    if not rules:
        # Nothing to plan: no funding loan or listing is read. (The Schedule's run every 15
        # minutes read every funding loan first, whole rows, for nothing: up to 10,000 of them
        # in make bench's memory run, in the worker's memory at once.)
        return RunPlan(run_no, [], {}, {})
    loans, workflows = funding_loans(session, loan_ids)
    offers: list[ListingOffer] = []
    if listing_ids is None or listing_ids:
        if any(rule.buy_on_market for rule in rules):
            after = None
            if listing_ids is None:  # the Schedule's run: on from where the last one's window ended
                last = session.execute(
                    select(AutoInvestRun.market_after_created_at, AutoInvestRun.market_after_id)
                    .where(AutoInvestRun.market_after_id.is_not(None))
                    .order_by(AutoInvestRun.run_no.desc())
                    .limit(1)
                ).first()
                after = (last[0], last[1]) if last is not None else None
            offers, market_workflows, cursor = market_offers(
                session, None if listing_ids is None else list(listing_ids), at, after
            )
            workflows.update(market_workflows)
            if cursor is not None:
                session.execute(
                    update(AutoInvestRun)
                    .where(AutoInvestRun.run_no == run_no)
                    .values(market_after_created_at=cursor[0], market_after_id=cursor[1])
                )
    if not (loans or offers):
        return RunPlan(run_no, [], workflows, {})
    loan_ids_held = [loan.loan_id for loan in loans] + [offer.loan_id for offer in offers]
    held = positions(session, [r.investor_id for r in rules], reinvest, loan_ids_held, at)
    planned = plan(loans, rules, held, rotation=run_no)
    purchases = plan_market(offers, rules, held, rotation=run_no)
    ids = {
        (item.loan_id, item.investor_id): uuid.uuid5(
            ALLOCATION_NAMESPACE, f"{run_no}:{item.loan_id}:{item.investor_id}"
        )
        for item in planned
    }
    trade_ids = {
        (item.listing_id, item.investor_id): trade_id_of(run_no, item.listing_id, item.investor_id)
        for item in purchases
        if item.listing_id is not None
    }
    rows = [
        {
            "run_no": run_no,
            "kind": "primary",
            "loan_id": item.loan_id,
            "investor_id": item.investor_id,
            "asked": item.asked,
            "allocated": item.amount,
            "reason": item.reason,
            "investment_id": ids[(item.loan_id, item.investor_id)],
            "listing_id": None,
            "trade_id": None,
            "details": {"workflow_id": workflows[item.loan_id]},
            "outcome": "planned" if item.amount > 0 else "not_allocated",
        }
        for item in planned
    ] + [
        {
            "run_no": run_no,
            "kind": "market",
            "loan_id": item.loan_id,
            "listing_id": item.listing_id,
            "trade_id": trade_ids[(item.listing_id, item.investor_id)],
            "investor_id": item.investor_id,
            "asked": item.asked,
            "allocated": item.amount,
            "reason": item.reason,
            "investment_id": None,
            "details": {
                "workflow_id": workflows[item.loan_id],
                "cost": f"{item.cost or ZERO:.2f}",
                "max_cost": f"{item.max_cost or ZERO:.2f}",
            },
            "outcome": "planned" if item.amount > 0 else "not_allocated",
        }
        for item in purchases
        if item.listing_id is not None
    ]
    if rows:  # one multi-row insert: a run may plan tens of thousands
        session.execute(insert(AutoInvestAllocation), rows)
    return RunPlan(run_no, planned + purchases, workflows, ids, trade_ids)


@dataclass(frozen=True)
class PlannedPlacement:
    """One allocation to place: an investment (`invest` update) or, with a listing, a
    purchase (`trade` update)."""

    allocation_id: int
    investment_id: uuid.UUID | None
    loan_id: uuid.UUID
    workflow_id: str
    investor_id: uuid.UUID
    amount: Decimal
    listing_id: uuid.UUID | None = None
    trade_id: uuid.UUID | None = None
    # a purchase's most accepted cost (the planned bound)
    max_cost: Decimal | None = None


def planned_placements(session: Session, run_no: int) -> list[PlannedPlacement]:
    """The run's allocations not placed yet (a retried placing goes on where it stopped)."""
    rows = session.scalars(
        select(AutoInvestAllocation)
        .where(AutoInvestAllocation.run_no == run_no, AutoInvestAllocation.outcome == "planned")
        .order_by(AutoInvestAllocation.id)
    )
    return [
        PlannedPlacement(
            r.id,
            r.investment_id,
            r.loan_id,
            r.details["workflow_id"],
            r.investor_id,
            r.allocated,
            listing_id=r.listing_id,
            trade_id=r.trade_id,
            max_cost=Decimal(r.details["max_cost"]) if r.details.get("max_cost") else None,
        )
        for r in rows
    ]


def settled_trades(session: Session, trade_ids: list[uuid.UUID]) -> dict[uuid.UUID, MarketTrade]:
    """The trades among these that already settled (a placement whose answer was lost)."""
    if not trade_ids:
        return {}
    return {t.id: t for t in session.scalars(select(MarketTrade).where(MarketTrade.id.in_(trade_ids)))}


@dataclass(frozen=True)
class Outcome:
    allocation_id: int
    outcome: str
    detail: str | None = None
    # a market purchase's holding, once bought
    investment_id: uuid.UUID | None = None


def record_outcomes(session: Session, outcomes: list[Outcome]) -> None:
    for item in outcomes:
        values: dict[str, object] = {"outcome": item.outcome, "outcome_detail": item.detail}
        if item.investment_id is not None:
            values["investment_id"] = item.investment_id
        session.execute(
            update(AutoInvestAllocation).where(AutoInvestAllocation.id == item.allocation_id).values(**values)
        )


def outcome_counts(session: Session, run_no: int) -> dict[str, int]:
    return dict(
        session.execute(
            select(AutoInvestAllocation.outcome, func.count())
            .where(AutoInvestAllocation.run_no == run_no)
            .group_by(AutoInvestAllocation.outcome)
        ).all()
    )
