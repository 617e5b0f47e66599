"""The scoring rules as a value: data an operator edits (a new version each time), which
domain/scoring.py evaluates. No code branch knows a threshold; the rules say them all."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.numbers import AsciiDecimal

GRADES = ("A", "B", "C", "D", "E")
BEHAVIOUR_EVENTS = ("on_time_installment", "late_installment", "loan_repaid", "loan_defaulted")
BehaviourEvent = Literal["on_time_installment", "late_installment", "loan_repaid", "loan_defaulted"]

Points = int
Label = str


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UpToBand(_Rules):
    """Applies when the value is at most `up_to` (the last band may have no bound)."""

    up_to: AsciiDecimal | None = Field(default=None, ge=0, le=Decimal("100000"))
    points: Points = Field(ge=-1000, le=1000)
    label: Label = Field(min_length=1, max_length=120)


class AtLeastBand(_Rules):
    """Applies when the value is at least `at_least` (bands from the highest down; the last at 0)."""

    at_least: int = Field(ge=0, le=10000)
    points: Points = Field(ge=-1000, le=1000)
    label: Label = Field(min_length=1, max_length=120)


class BehaviourRules(_Rules):
    """On-time payment points: earned and lost on this platform's real repayment events, and
    how much of a borrower's balance counts in the score."""

    points: dict[BehaviourEvent, Points]
    # The balance counts in the score within these bounds: a long good history helps, but
    # cannot outweigh an unaffordable loan; a default weighs, but not forever.
    min_contribution: Points = Field(ge=-1000, le=0)
    max_contribution: Points = Field(ge=0, le=1000)

    @model_validator(mode="after")
    def _complete(self) -> BehaviourRules:
        missing = set(BEHAVIOUR_EVENTS) - set(self.points)
        if missing:
            raise ValueError(f"behaviour points need a value for {', '.join(sorted(missing))}")
        if self.points["on_time_installment"] < 0 or self.points["loan_repaid"] < 0:
            raise ValueError("paying on time and repaying a loan cannot cost points")
        if self.points["late_installment"] > 0 or self.points["loan_defaulted"] > 0:
            raise ValueError("a late installment and a default cannot earn points")
        return self


def _check_up_to(name: str, bands: tuple[UpToBand, ...]) -> None:
    if not bands:
        raise ValueError(f"{name} needs at least one band")
    bounds = [b.up_to for b in bands]
    if any(b is None for b in bounds[:-1]):
        raise ValueError(f"{name}: only the last band may have no upper bound")
    finite = [b for b in bounds if b is not None]
    if finite != sorted(finite) or len(set(finite)) != len(finite):
        raise ValueError(f"{name}: bands go from the lowest bound up, each bound once")


class ScoringRules(_Rules):
    base_score: int = Field(ge=0, le=1000)
    # Monthly payment + existing obligations, as % of monthly income. Above the product's
    # cap the request is refused whatever the score.
    debt_to_income_percent: tuple[UpToBand, ...]
    # Months with the current employer, highest band first.
    employment_months: tuple[AtLeastBand, ...]
    # The loan amount in months of income.
    amount_in_months_of_income: tuple[UpToBand, ...]
    behaviour: BehaviourRules
    # The lowest score of each grade.
    grade_floors: dict[Literal["A", "B", "C", "D", "E"], int]
    reject_below: int = Field(ge=0, le=1000)
    review_below: int = Field(ge=0, le=1000)

    @model_validator(mode="after")
    def _consistent(self) -> ScoringRules:
        _check_up_to("debt_to_income_percent", self.debt_to_income_percent)
        _check_up_to("amount_in_months_of_income", self.amount_in_months_of_income)
        if self.debt_to_income_percent[-1].up_to is not None:
            raise ValueError("debt_to_income_percent: the last band has no upper bound (the cap is the product's)")
        if self.amount_in_months_of_income[-1].up_to is not None:
            raise ValueError("amount_in_months_of_income: the last band has no upper bound")
        floors = [b.at_least for b in self.employment_months]
        if not floors or floors != sorted(floors, reverse=True) or len(set(floors)) != len(floors) or floors[-1] != 0:
            raise ValueError("employment_months: bands from the highest down, each once, the last at 0")
        if set(self.grade_floors) != set(GRADES):
            raise ValueError("grade_floors needs a floor for each grade A..E")
        values = [self.grade_floors[g] for g in GRADES]  # type: ignore[index]
        if values != sorted(values, reverse=True) or len(set(values)) != len(values):
            raise ValueError("grade_floors: A highest, then B, C, D, E, each lower than the one before")
        if not all(0 <= v <= 1000 for v in values):
            raise ValueError("grade floors are scores, 0 to 1000")
        if self.reject_below > self.review_below:
            raise ValueError("reject_below must not be above review_below")
        if self.reject_below < self.grade_floors["E"]:
            raise ValueError("reject_below must be at least grade E's floor: every accepted score needs a grade")
        return self
