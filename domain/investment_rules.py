"""Whether a loan in funding takes an investment: the checks the loan workflow makes on
every `invest` update (in its validator, and again under its lock)."""

from __future__ import annotations

from decimal import Decimal

from domain.money import KOPEK, round_money
from domain.refusals import InvalidInvestment, OverFunding


def investor_cap(loan_amount: Decimal, max_investor_share_percent: Decimal) -> Decimal:
    """The most one investor may hold of this loan."""
    return round_money(loan_amount * max_investor_share_percent / 100)


def check_investment(
    amount: Decimal,
    *,
    loan_amount: Decimal,
    funded_amount: Decimal,
    min_investment: Decimal,
    max_investor_share_percent: Decimal,
    already_invested: Decimal,
) -> None:
    """Raises the refusal for an investment of `amount` by an investor who holds
    `already_invested` of the loan; returns if the loan takes it.

    - positive, in kopecks;
    - no more than the loan still needs (never over-funded);
    - at least the product's minimum, unless it is exactly what is left;
    - the investor's total within the product's share of the loan."""
    if amount <= 0 or amount != amount.quantize(KOPEK):
        raise InvalidInvestment("the amount must be positive with at most two decimals")
    remaining = loan_amount - funded_amount
    if amount > remaining:
        raise OverFunding(f"only {remaining:.2f} is left to fund")
    if amount < min_investment and amount != remaining:
        raise InvalidInvestment(f"the minimum investment is {min_investment:.2f} (or exactly the {remaining:.2f} left)")
    cap = investor_cap(loan_amount, max_investor_share_percent)
    if already_invested + amount > cap:
        percent = f"{max_investor_share_percent.normalize():f}"  # 50 -> "50", 33.50 -> "33.5"
        raise InvalidInvestment(
            f"one investor may hold at most {percent}% of this loan ({cap:.2f}); you hold {already_invested:.2f}"
        )
