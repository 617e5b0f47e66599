"""The calculator's answer to "I can pay X a month" under a product, whatever its modality:
the amount (for a term) or the term (for an amount) that fits X, with the schedule it gives.

- A loan or an award credit (annuity, differentiated or seasonal): fits means the schedule's
  highest monthly burden (domain/schedule.py: a seasonal harvest payment spread over the months
  it pays for) is at most X.
- A programmed purchase: X is the monthly contribution and, after the award, the most the
  award credit may ask a month. The term is the number of contributions until the award is
  due (share_reached: until the share of the price is reached; draw and bid: the plan's end,
  when the award is certain; an event may award it earlier, with a larger credit), the amount
  is the asset's price; the award credit (its rest, over `loan_term_months`) must fit X.

Priced at the grade's rate, or before scoring at the product's highest (the most it could
cost). domain/payment_solver.py finds the answers exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_DOWN, Decimal

from core.errors import InvalidRequest
from domain.money import KOPEK
from domain.payment_solver import NothingFits, largest_amount_for, shortest_term_for
from domain.purchase_plan import (
    Contribution,
    PlanRuleError,
    award_credit_for,
    contribution_schedule,
    contributions_to_share,
    share_reached,
)
from domain.schedule import Schedule, ScheduleError
from models.products import LoanProduct
from products.service import schedule_of


@dataclass(frozen=True)
class PlanProjection:
    monthly_contribution: Decimal
    contribution_months: int
    contributions: list[Contribution]
    award_credit_amount: Decimal
    down_payment: Decimal
    loan_term_months: int
    award_credit_product: str


@dataclass(frozen=True)
class Fit:
    amount: Decimal  # the loan's amount, or a plan's asset price
    term_months: int  # the loan's term, or a plan's number of contributions
    rate_annual: Decimal
    schedule: Schedule  # the loan's, or a plan's award credit's
    plan: PlanProjection | None = None


def rate_for(product: LoanProduct, grade: str | None) -> Decimal:
    return product.rate_for_grade(grade) if grade else max(product.rate_for_grade(g) for g in product.rates_by_grade)


def fit_loan(
    product: LoanProduct,
    payment: Decimal,
    start: date,
    *,
    grade: str | None,
    amount: Decimal | None,
    term_months: int | None,
) -> Fit:
    rate = rate_for(product, grade)
    try:
        if amount is None:
            assert term_months is not None
            found = largest_amount_for(
                payment,
                lambda a: schedule_of(product, a, rate, term_months, start).highest_monthly_burden,
                product.min_amount,
                product.max_amount,
                term_months,
            )
            amount = found
        else:
            term_months = shortest_term_for(
                payment,
                lambda t: schedule_of(product, amount, rate, t, start).highest_monthly_burden,
                range(product.min_term_months, product.max_term_months + 1),
                at_least=lambda t: (amount / t).quantize(KOPEK, rounding=ROUND_DOWN),
            )
    except NothingFits as error:
        raise InvalidRequest(f"{payment:.2f} a month does not fit product {product.code!r}: {error}") from None
    return Fit(amount, term_months, rate, schedule_of(product, amount, rate, term_months, start))


def fit_plan(
    product: LoanProduct,
    credit: LoanProduct,
    payment: Decimal,
    start: date,
    *,
    grade: str | None,
    price: Decimal | None,
    contribution_months: int | None,
    loan_term_months: int,
) -> Fit:
    rate = rate_for(credit, grade)

    def credit_after(price: Decimal, months: int) -> tuple[Decimal, Decimal]:
        """(the award credit, the down payment) when the plan is awarded as its rule plans."""
        paid = months
        if product.award_rule == "share_reached":
            assert product.award_share_percent is not None
            paid = contributions_to_share(price, payment, product.award_share_percent)
            if paid > months:
                raise ScheduleError("the share is not reached in these months")
        try:
            loan = award_credit_for(price, payment * paid, credit.platform_fee_percent, credit.reserve_fund_percent)
        except PlanRuleError as error:
            raise ScheduleError(str(error)) from None
        if not credit.min_amount <= loan.loan_amount <= credit.max_amount:
            raise ScheduleError("the award credit is outside its product's amounts")
        return loan.loan_amount, loan.down_payment

    def burden(price: Decimal, months: int) -> Decimal:
        loan, _ = credit_after(price, months)
        return schedule_of(credit, loan, rate, loan_term_months, start).highest_monthly_burden

    try:
        if price is None:
            assert contribution_months is not None
            months = contribution_months
            price = largest_amount_for(
                payment,
                lambda p: burden(p, months),
                # a price the contributions leave at least the least award credit of
                min(product.max_amount, max(product.min_amount, payment * months + credit.min_amount)),
                product.max_amount,
                # no price fits whose credit the payments over its term could not repay
                months + loan_term_months,
            )
        else:
            if product.award_rule == "share_reached":
                assert product.award_share_percent is not None
                months = contributions_to_share(price, payment, product.award_share_percent)
                if not product.min_term_months <= months <= product.max_term_months:
                    raise NothingFits(f"{months} contributions reach the share, outside the plan's months")
                if burden(price, months) > payment:
                    raise NothingFits("the award credit after the share would ask more a month")
            else:
                at = price
                months = shortest_term_for(
                    payment, lambda n: burden(at, n), range(product.min_term_months, product.max_term_months + 1)
                )
            contribution_months = months
    except (NothingFits, ScheduleError) as error:
        raise InvalidRequest(f"{payment:.2f} a month does not fit product {product.code!r}: {error}") from None
    assert contribution_months is not None
    if product.award_rule == "share_reached":
        assert product.award_share_percent is not None
        contribution_months = contributions_to_share(price, payment, product.award_share_percent)
        assert share_reached(payment * contribution_months, price, product.award_share_percent)
    loan, down = credit_after(price, contribution_months)
    projection = PlanProjection(
        monthly_contribution=payment,
        contribution_months=contribution_months,
        contributions=contribution_schedule(payment, contribution_months, start),
        award_credit_amount=loan,
        down_payment=down,
        loan_term_months=loan_term_months,
        award_credit_product=credit.code,
    )
    award_day = projection.contributions[-1].due_date
    return Fit(
        price,
        contribution_months,
        rate,
        schedule_of(credit, loan, rate, loan_term_months, award_day),
        projection,
    )
