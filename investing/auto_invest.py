"""Auto-invest on the database side: investors' rules, what a run may plan with (loans open
for funding, each investor's budget and limits), and the record of every allocation.

The rules of matching and fair sharing are in domain/auto_invest.py. Nothing here creates
an investment: a run's plan is placed through each loan workflow's `invest` update.

reinvest_returns, precisely: with it on, auto-invest may spend all the available money.
With it off, it spends only money the investor deposited and has never lent:
    deposits confirmed - withdrawals requested (not rejected) - investments (not released),
never more than what is available. Money that came back from loans (installments, early
repayments, reserve-fund cover) is left for the investor to withdraw or invest by hand; a
manual investment counts against the deposited money first.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from core.errors import NotFound
from domain.auto_invest import AutoInvestRule, FundingLoan, InvestorPosition, PlannedInvestment, plan
from domain.money import ZERO, round_money
from investing.annual_limit import ANNUAL_LIMIT, limit_year
from models.auto_invest import AutoInvestAllocation, AutoInvestRuleRow, AutoInvestRun, InvestorYearTotal
from models.ledger import Deposit, LedgerAccount, Wallet, Withdrawal
from models.loan_status import LoanStatus
from models.loans import Investment, LoanRequest, RepaymentInstallment
from models.products import LoanProduct
from models.users import User

ALLOCATION_NAMESPACE = uuid.UUID("0b6f4d1e-2c39-4d7a-8f43-5a9e3c1d2b77")


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
    """Loans open for investment, oldest deadline first, and their workflow ids."""
    query = (
        select(LoanRequest, LoanProduct.min_investment, LoanProduct.max_investor_share_percent)
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
    for loan, min_investment, share in session.execute(query):
        loans.append(
            FundingLoan(
                loan_id=loan.id,
                amount=loan.amount,
                remaining=loan.amount - loan.funded_amount,
                rate_annual=loan.rate_annual,
                grade=loan.risk_grade,
                term_months=loan.term_months,
                min_investment=min_investment,
                max_per_investor=round_money(loan.amount * share / 100),
            )
        )
        workflows[loan.id] = loan.workflow_id
    return loans, workflows


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
    being planned, in a handful of aggregate queries."""
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
        .where(Investment.investor_id.in_(ids), Investment.status != "released")
        .group_by(Investment.investor_id),
    )
    outstanding_by_loan = (
        select(
            RepaymentInstallment.loan_id,
            func.sum(RepaymentInstallment.principal - RepaymentInstallment.paid_principal).label("outstanding"),
        )
        .where(RepaymentInstallment.status != "written_off")
        .group_by(RepaymentInstallment.loan_id)
        .subquery()
    )
    outstanding = _sums(
        session,
        select(
            Investment.investor_id, func.sum(Investment.amount * outstanding_by_loan.c.outstanding / LoanRequest.amount)
        )
        .join(LoanRequest, LoanRequest.id == Investment.loan_id)
        .join(outstanding_by_loan, outstanding_by_loan.c.loan_id == Investment.loan_id)
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
            select(Investment.investor_id, Investment.loan_id, func.sum(Investment.amount))
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
                deposited.get(investor_id, ZERO) - withdrawn.get(investor_id, ZERO) - lent.get(investor_id, ZERO)
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
    investment_ids: dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID]


def _planned_before(session: Session, run_no: int) -> RunPlan:
    rows = session.scalars(
        select(AutoInvestAllocation).where(AutoInvestAllocation.run_no == run_no).order_by(AutoInvestAllocation.id)
    ).all()
    return RunPlan(
        run_no,
        [PlannedInvestment(r.loan_id, r.investor_id, r.asked, r.allocated, r.reason) for r in rows],
        {r.loan_id: r.details["workflow_id"] for r in rows},
        {(r.loan_id, r.investor_id): r.investment_id for r in rows},
    )


def plan_run(session: Session, run_key: str, loan_ids: list[uuid.UUID] | None, at: datetime) -> RunPlan:
    """Plans a run and records every allocation (asked, allocated, why) before anything is
    placed. The run number is the rotation's starting point: it moves on with each run.
    The same run_key again returns the plan already recorded."""
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
    loans, workflows = funding_loans(session, loan_ids)
    rules, reinvest = active_rules(session)
    if not loans or not rules:
        return RunPlan(run_no, [], workflows, {})
    held = positions(session, [r.investor_id for r in rules], reinvest, [loan.loan_id for loan in loans], at)
    planned = plan(loans, rules, held, rotation=run_no)
    ids = {
        (item.loan_id, item.investor_id): uuid.uuid5(
            ALLOCATION_NAMESPACE, f"{run_no}:{item.loan_id}:{item.investor_id}"
        )
        for item in planned
    }
    if planned:  # one multi-row insert: a run may plan tens of thousands
        session.execute(
            insert(AutoInvestAllocation),
            [
                {
                    "run_no": run_no,
                    "loan_id": item.loan_id,
                    "investor_id": item.investor_id,
                    "asked": item.asked,
                    "allocated": item.amount,
                    "reason": item.reason,
                    "investment_id": ids[(item.loan_id, item.investor_id)],
                    "details": {"workflow_id": workflows[item.loan_id]},
                    "outcome": "planned" if item.amount > 0 else "not_allocated",
                }
                for item in planned
            ],
        )
    return RunPlan(run_no, planned, workflows, ids)


@dataclass(frozen=True)
class PlannedPlacement:
    investment_id: uuid.UUID
    loan_id: uuid.UUID
    workflow_id: str
    investor_id: uuid.UUID
    amount: Decimal


def planned_placements(session: Session, run_no: int) -> list[PlannedPlacement]:
    """The run's allocations not placed yet (a retried placing goes on where it stopped)."""
    rows = session.scalars(
        select(AutoInvestAllocation)
        .where(AutoInvestAllocation.run_no == run_no, AutoInvestAllocation.outcome == "planned")
        .order_by(AutoInvestAllocation.id)
    )
    return [
        PlannedPlacement(r.investment_id, r.loan_id, r.details["workflow_id"], r.investor_id, r.allocated) for r in rows
    ]


def record_outcomes(session: Session, outcomes: list[tuple[uuid.UUID, str, str | None]]) -> None:
    for investment_id, outcome, detail in outcomes:
        session.execute(
            update(AutoInvestAllocation)
            .where(AutoInvestAllocation.investment_id == investment_id)
            .values(outcome=outcome, outcome_detail=detail)
        )


def outcome_counts(session: Session, run_no: int) -> dict[str, int]:
    return dict(
        session.execute(
            select(AutoInvestAllocation.outcome, func.count())
            .where(AutoInvestAllocation.run_no == run_no)
            .group_by(AutoInvestAllocation.outcome)
        ).all()
    )
