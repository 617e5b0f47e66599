"""Auto-invest matching: 10,000 rules against 100 loans open for funding.

- planner: the pure rules (domain/auto_invest.plan): match every rule against every loan,
  ask, share oversubscribed loans, update the budgets; no I/O.
- run plan: what a run's first activity does on the database (investing/auto_invest.plan_run):
  read the loans and the active rules, every investor's position in aggregate queries, plan,
  and record every allocation. Investors' money is deposited through the real ledger.
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from core.db import make_engine, unit_of_work
from domain.auto_invest import AutoInvestRule, FundingLoan, InvestorPosition, plan
from investing.auto_invest import plan_run
from ledger.accounts import ensure_platform_accounts, open_wallet, platform_account, wallet_accounts
from ledger.postings import Leg, post_transaction
from models.auto_invest import AutoInvestRuleRow
from models.loans import LoanRequest
from models.users import User
from products.catalog import STANDARD
from products.service import ensure_product

GRADES = "ABCDE"
RATES = {
    "A": Decimal("14.00"),
    "B": Decimal("17.00"),
    "C": Decimal("20.00"),
    "D": Decimal("24.00"),
    "E": Decimal("29.00"),
}


@dataclass
class MatchingRow:
    name: str
    rules: int
    loans: int
    seconds: float
    placements: int

    @property
    def pairs_per_second(self) -> float:
        return self.rules * self.loans / self.seconds


def _random_rule(rng: random.Random, investor_id: uuid.UUID) -> dict:
    low = Decimal(rng.choice((10_000, 50_000, 100_000)))
    return {
        "investor_id": investor_id,
        "is_active": True,
        "max_amount_per_loan": Decimal(rng.choice((1_000, 5_000, 10_000, 20_000))),
        "min_loan_amount": low,
        "max_loan_amount": low * rng.choice((10, 50)),
        "allowed_grades": sorted(rng.sample(GRADES, rng.randint(1, 5))),
        "min_rate": Decimal(rng.choice((0, 14, 17, 20))),
        "max_term_months": rng.choice((6, 12, 24, 36)),
        "reinvest_returns": rng.random() < 0.8,
        "max_portfolio_share_percent": rng.choice((None, None, Decimal(10))),
    }


def _random_loan(rng: random.Random, loan_id: uuid.UUID) -> dict:
    grade = rng.choice(GRADES)
    amount = Decimal(rng.choice((100_000, 300_000, 1_000_000, 3_000_000)))
    return {
        "loan_id": loan_id,
        "amount": amount,
        "grade": grade,
        "rate_annual": RATES[grade],
        "term_months": rng.choice((3, 6, 12, 24, 36)),
    }


def bench_planner(rules: int, loans: int, repeats: int = 3) -> MatchingRow:
    rng = random.Random(7)
    rule_values = [_random_rule(rng, uuid.uuid4()) for _ in range(rules)]
    loan_values = [_random_loan(rng, uuid.uuid4()) for _ in range(loans)]
    times, placements = [], 0
    for _ in range(repeats):
        domain_rules = [
            AutoInvestRule(
                investor_id=r["investor_id"],
                max_amount_per_loan=r["max_amount_per_loan"],
                min_loan_amount=r["min_loan_amount"],
                max_loan_amount=r["max_loan_amount"],
                allowed_grades=frozenset(r["allowed_grades"]),
                min_rate=r["min_rate"],
                max_term_months=r["max_term_months"],
                max_portfolio_share_percent=r["max_portfolio_share_percent"],
            )
            for r in rule_values
        ]
        funding = [
            FundingLoan(
                loan_id=v["loan_id"],
                amount=v["amount"],
                remaining=v["amount"],
                rate_annual=v["rate_annual"],
                grade=v["grade"],
                term_months=v["term_months"],
                min_investment=Decimal("1000.00"),
                max_per_investor=v["amount"] / 2,
            )
            for v in loan_values
        ]
        held = {
            r.investor_id: InvestorPosition(
                budget=Decimal("150000.00"), portfolio_value=Decimal("150000.00"), annual_left=Decimal("600000.00")
            )
            for r in domain_rules
        }
        started = time.perf_counter()
        planned = plan(funding, domain_rules, held, rotation=1)
        times.append(time.perf_counter() - started)
        placements = sum(1 for p in planned if p.amount > 0)
    return MatchingRow("planner (pure rules)", rules, loans, statistics.median(times), placements)


def _populate(factory: sessionmaker[Session], rules: int, loans: int) -> None:
    rng = random.Random(11)
    with unit_of_work(factory) as session:
        ensure_platform_accounts(session)
        product = ensure_product(session, STANDARD)
        borrower = User(email="bench-borrower@example.com", password_hash="x", role="borrower")
        session.add(borrower)
        session.flush()
        user_ids = [uuid.uuid4() for _ in range(rules)]
        session.execute(
            insert(User),
            [
                {"id": u, "email": f"bench-investor-{n}@example.com", "password_hash": "x", "role": "investor"}
                for n, u in enumerate(user_ids)
            ],
        )
        legs = []
        for user_id in user_ids:
            wallet = open_wallet(session, user_id, "investor")
            legs.append(Leg(wallet_accounts(session, wallet.id)[0].id, Decimal("150000.00")))
        legs.append(Leg(platform_account(session, "nominal").id, -Decimal("150000.00") * len(user_ids)))
        post_transaction(session, key="bench:auto-invest:funds", kind="deposit", legs=legs)
        now = datetime.now(UTC)
        session.execute(insert(AutoInvestRuleRow), [{**_random_rule(rng, u), "updated_at": now} for u in user_ids])
        for n in range(loans):
            values = _random_loan(rng, uuid.uuid4())
            session.add(
                LoanRequest(
                    id=values["loan_id"],
                    borrower_id=borrower.id,
                    product_id=product.id,
                    amount=values["amount"],
                    term_months=values["term_months"],
                    purpose="bench",
                    status="funding",
                    risk_grade=values["grade"],
                    rate_annual=values["rate_annual"],
                    scoring_score=800,
                    workflow_id=f"loan-{values['loan_id']}",
                    funding_deadline=now + timedelta(days=14, minutes=n),
                )
            )


def bench_run_plan(url: str, rules: int, loans: int) -> tuple[MatchingRow, float]:
    engine = make_engine(url, 4)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    started = time.perf_counter()
    _populate(factory, rules, loans)
    setup = time.perf_counter() - started
    started = time.perf_counter()
    with unit_of_work(factory) as session:
        run = plan_run(session, "bench", None, datetime.now(UTC))
    elapsed = time.perf_counter() - started
    engine.dispose()
    row = MatchingRow(
        "run plan (database + planner + allocations recorded)",
        rules,
        loans,
        elapsed,
        sum(1 for p in run.planned if p.amount > 0),
    )
    return row, setup


def run_auto_invest_bench(url: str, quick: bool) -> tuple[list[MatchingRow], list[str]]:
    rules, loans = (1_000, 10) if quick else (10_000, 100)
    planner = bench_planner(rules, loans)
    run_plan, setup = bench_run_plan(url, rules, loans)
    notes = [
        f"setup of the run-plan benchmark ({rules:,} investors with money and rules, {loans} loans): "
        f"{setup:.1f} s (not counted)",
        "random rules (grades, rate, term, loan size, per-loan maximum, 10% portfolio cap for a third) "
        "and loans; 150,000 RUB per investor",
    ]
    return [planner, run_plan], notes


def matching_table(rows: list[MatchingRow]) -> str:
    lines = [
        "| benchmark | rules | loans | seconds | rule x loan pairs/s | investments planned |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.name} | {row.rules:,} | {row.loans} | {row.seconds:.3f} | "
            f"{row.pairs_per_second:,.0f} | {row.placements:,} |"
        )
    return "\n".join(lines)
