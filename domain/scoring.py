"""A first, explainable credit score (0-1000) from the borrower's profile and the request.

Every factor adds or removes points and says why, in words an operator can read. The
result is a score, a risk grade A..E (rate from the product's table) and a decision:
approve, manual review or reject.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

BASE_SCORE = 500
# Lower bound of each grade's score band.
GRADE_BANDS = (("A", 800), ("B", 700), ("C", 600), ("D", 500), ("E", 400))
REJECT_BELOW = 400
REVIEW_BELOW = 500
# Monthly payment + existing obligations may take at most this share of income.
DTI_CAP = Decimal("0.50")


@dataclass(frozen=True)
class ScoringInput:
    monthly_income: Decimal
    monthly_obligations: Decimal
    employment_months: int
    monthly_payment: Decimal
    amount: Decimal
    on_time_points: int = 0


@dataclass(frozen=True)
class Factor:
    name: str
    points: int
    reason: str


@dataclass(frozen=True)
class ScoringResult:
    score: int
    grade: str | None
    decision: str  # approve | review | reject
    factors: tuple[Factor, ...] = field(default_factory=tuple)
    reject_reason: str | None = None


def grade_for(score: int) -> str | None:
    for grade, floor in GRADE_BANDS:
        if score >= floor:
            return grade
    return None


def score_request(data: ScoringInput) -> ScoringResult:
    factors: list[Factor] = []
    income = data.monthly_income
    if income <= 0:
        return ScoringResult(score=0, grade=None, decision="reject",
                             factors=(Factor("income", -BASE_SCORE, "no monthly income declared"),),
                             reject_reason="no income to repay from")
    dti = (data.monthly_obligations + data.monthly_payment) / income
    if dti > DTI_CAP:
        factors.append(Factor("debt_to_income", -300,
                              f"payment and obligations would take {dti:.0%} of income (cap {DTI_CAP:.0%})"))
    elif dti > Decimal("0.35"):
        factors.append(Factor("debt_to_income", 0, f"payment and obligations take {dti:.0%} of income"))
    elif dti > Decimal("0.20"):
        factors.append(Factor("debt_to_income", 100, f"payment and obligations take only {dti:.0%} of income"))
    else:
        factors.append(Factor("debt_to_income", 200, f"payment and obligations take just {dti:.0%} of income"))
    months = data.employment_months
    if months >= 36:
        factors.append(Factor("employment", 150, f"employed {months} months"))
    elif months >= 12:
        factors.append(Factor("employment", 80, f"employed {months} months"))
    elif months >= 6:
        factors.append(Factor("employment", 0, f"employed {months} months"))
    else:
        factors.append(Factor("employment", -100, f"employed only {months} months"))
    yearly_income = income * 12
    if data.amount > yearly_income:
        factors.append(Factor("amount_to_income", -100, "the loan exceeds a year of income"))
    else:
        factors.append(Factor("amount_to_income", 50, "the loan is within a year of income"))
    if data.on_time_points:
        factors.append(Factor("payment_history", data.on_time_points,
                              f"{data.on_time_points:+d} points from repayment history on this platform"))
    score = max(0, min(1000, BASE_SCORE + sum(f.points for f in factors)))
    grade = grade_for(score)
    if dti > DTI_CAP:
        return ScoringResult(score=score, grade=grade, decision="reject", factors=tuple(factors),
                             reject_reason="the monthly payment would exceed the debt-to-income cap")
    if score < REJECT_BELOW or grade is None:
        return ScoringResult(score=score, grade=grade, decision="reject", factors=tuple(factors),
                             reject_reason=f"score {score} is below {REJECT_BELOW}")
    decision = "review" if score < REVIEW_BELOW else "approve"
    return ScoringResult(score=score, grade=grade, decision=decision, factors=tuple(factors))
