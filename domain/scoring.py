"""The credit score (0-1000) without a credit bureau: explainable rules, evaluated as data.

Inputs: the borrower's profile (monthly income, obligations, months employed), the request
(the monthly payment it would cost, the amount), the product's debt-to-income cap, and the
borrower's on-time payment points from this platform. The rules (models/scoring_rules.py)
say every threshold, every number of points and the words of each reason: an operator
changes them through the API, which writes a new version; a loan keeps the version it was
scored with. Each factor says what it added or removed and why, so the borrower, the
operator and compliance read the same explanation.

Score -> risk grade A..E (the product's table gives the rate) -> decision: approve, review
(an operator decides) or reject, with the reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from models.scoring_rules import AtLeastBand, BehaviourEvent, ScoringRules, UpToBand

Decision = Literal["approve", "review", "reject"]

# The rules `make run` starts with (version 1); operators change them through the API.
DEFAULT_RULES = ScoringRules(
    base_score=450,
    debt_to_income_percent=(
        UpToBand(up_to=Decimal(20), points=200, label="a light debt load"),
        UpToBand(up_to=Decimal(35), points=100, label="a moderate debt load"),
        UpToBand(up_to=Decimal(45), points=0, label="a heavy debt load"),
        UpToBand(up_to=None, points=-100, label="a debt load near the cap"),
    ),
    employment_months=(
        AtLeastBand(at_least=36, points=150, label="long, stable employment"),
        AtLeastBand(at_least=12, points=80, label="stable employment"),
        AtLeastBand(at_least=6, points=0, label="recent employment"),
        AtLeastBand(at_least=0, points=-100, label="very recent or no employment"),
    ),
    amount_in_months_of_income=(
        UpToBand(up_to=Decimal(6), points=100, label="a small loan for this income"),
        UpToBand(up_to=Decimal(12), points=50, label="a loan within a year of income"),
        UpToBand(up_to=Decimal(24), points=-50, label="a loan of more than a year of income"),
        UpToBand(up_to=None, points=-150, label="a loan of more than two years of income"),
    ),
    behaviour={
        "points": {"on_time_installment": 10, "late_installment": -30, "loan_repaid": 50, "loan_defaulted": -400},
        "min_contribution": -500,
        "max_contribution": 250,
    },
    grade_floors={"A": 800, "B": 700, "C": 600, "D": 500, "E": 400},
    reject_below=400,
    review_below=500,
)


@dataclass(frozen=True)
class PaymentHistory:
    """The borrower's on-time payment points on this platform, and what earned them."""

    balance: int = 0
    on_time_installments: int = 0
    late_installments: int = 0
    loans_repaid: int = 0
    loans_defaulted: int = 0


@dataclass(frozen=True)
class ScoringInput:
    monthly_income: Decimal
    monthly_obligations: Decimal
    employment_months: int
    monthly_payment: Decimal
    amount: Decimal
    max_debt_to_income_percent: Decimal
    history: PaymentHistory = PaymentHistory()


@dataclass(frozen=True)
class Factor:
    name: str
    points: int
    reason: str


@dataclass(frozen=True)
class ScoringResult:
    score: int
    grade: str | None
    decision: Decision
    factors: tuple[Factor, ...] = field(default_factory=tuple)
    reject_reason: str | None = None


def _percent(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def _up_to_band(bands: tuple[UpToBand, ...], value: Decimal) -> UpToBand:
    for band in bands:
        if band.up_to is None or value <= band.up_to:
            return band
    raise AssertionError("the rules guarantee an unbounded last band")


def _at_least_band(bands: tuple[AtLeastBand, ...], value: int) -> AtLeastBand:
    for band in bands:
        if value >= band.at_least:
            return band
    raise AssertionError("the rules guarantee a last band at 0")


def grade_for(rules: ScoringRules, score: int) -> str | None:
    for grade in ("A", "B", "C", "D", "E"):
        if score >= rules.grade_floors[grade]:
            return grade
    return None


def points_for(rules: ScoringRules, event: BehaviourEvent) -> int:
    """The on-time payment points a repayment event earns (or costs) under these rules."""
    return rules.behaviour.points[event]


def debt_to_income_percent(data: ScoringInput) -> Decimal:
    return (data.monthly_obligations + data.monthly_payment) * 100 / data.monthly_income


def score_request(rules: ScoringRules, data: ScoringInput) -> ScoringResult:
    if data.monthly_income <= 0:
        return ScoringResult(
            score=0,
            grade=None,
            decision="reject",
            factors=(Factor("income", 0, "no monthly income is declared"),),
            reject_reason="no income to repay from",
        )
    factors: list[Factor] = []
    dti = debt_to_income_percent(data)
    band = _up_to_band(rules.debt_to_income_percent, dti)
    factors.append(
        Factor(
            "debt_to_income",
            band.points,
            f"the payment and existing obligations would take {_percent(dti)}% of income: {band.label}",
        )
    )
    months = data.employment_months
    employment = _at_least_band(rules.employment_months, months)
    factors.append(
        Factor("employment", employment.points, f"{months} months with the current employer: {employment.label}")
    )
    in_months = data.amount / data.monthly_income
    size = _up_to_band(rules.amount_in_months_of_income, in_months)
    factors.append(
        Factor("amount_to_income", size.points, f"the loan is {_percent(in_months)} months of income: {size.label}")
    )
    history = data.history
    contribution = max(rules.behaviour.min_contribution, min(rules.behaviour.max_contribution, history.balance))
    if history == PaymentHistory():
        factors.append(Factor("payment_history", 0, "no repayment history on this platform yet"))
    else:
        capped = "" if contribution == history.balance else f" (counted as {contribution:+d}: the rules' bound)"
        factors.append(
            Factor(
                "payment_history",
                contribution,
                f"{history.balance:+d} on-time payment points{capped}: {history.on_time_installments} installment(s) "
                f"on time, {history.late_installments} late, {history.loans_repaid} loan(s) repaid, "
                f"{history.loans_defaulted} default(s)",
            )
        )
    score = max(0, min(1000, rules.base_score + sum(f.points for f in factors)))
    grade = grade_for(rules, score)
    if dti > data.max_debt_to_income_percent:
        return ScoringResult(
            score=score,
            grade=grade,
            decision="reject",
            factors=tuple(factors),
            reject_reason=f"the monthly payment would take the debt-to-income ratio to "
            f"{_percent(dti)}%, above the product's cap of "
            f"{_percent(data.max_debt_to_income_percent)}%",
        )
    if score < rules.reject_below or grade is None:
        return ScoringResult(
            score=score,
            grade=grade,
            decision="reject",
            factors=tuple(factors),
            reject_reason=f"score {score} is below {rules.reject_below}",
        )
    decision: Decision = "review" if score < rules.review_below else "approve"
    return ScoringResult(score=score, grade=grade, decision=decision, factors=tuple(factors))
