"""The customer's question, "I can pay X a month": the largest amount that fits X for a term,
or the shortest term that fits X for an amount, under any schedule the platform builds.

"Fits" means the measure the caller gives (products/fitting.py: a schedule's highest monthly
burden: an annuity's level payment or its last, a differentiated loan's first amortizing
payment, a seasonal plan's harvest payment spread over the months it pays for) is at most X:
the borrower never owes more a month than they said they can pay. The measure must grow with
the amount (and fall as the term grows, for the term's answer to be the shortest). The answers are exact: the
amount found fits and one kopek more does not; the term found fits and the one before it (of
those the plan allows) does not. Schedules whose terms cannot be built (ScheduleError) do not
fit.

Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import ROUND_DOWN, Decimal

from domain.money import KOPEK
from domain.schedule import ScheduleError

# A schedule's highest payment for an amount (or a term); raises ScheduleError if none.
HighestFor = Callable[[Decimal], Decimal]
HighestForTerm = Callable[[int], Decimal]


class NothingFits(ValueError):
    """No amount (term) within the limits fits the payment; the message says the nearest."""


def _fits(highest: Callable[[Decimal], Decimal], amount: Decimal, payment: Decimal) -> bool:
    try:
        return highest(amount) <= payment
    except ScheduleError:
        return False


def largest_amount_for(
    payment: Decimal, highest_for: HighestFor, min_amount: Decimal, max_amount: Decimal, periods: int
) -> Decimal:
    """The largest amount in [min_amount, max_amount] whose schedule's highest payment is at
    most `payment`. The highest payment grows with the amount, so the answer is found by
    bisection over kopecks; `periods` (the number of payments) bounds it from above: no
    schedule repays more principal than its payments add up to."""
    if payment <= 0 or payment != payment.quantize(KOPEK):
        raise ValueError("the payment must be positive, in kopecks")
    if not _fits(highest_for, min_amount, payment):
        raise NothingFits(f"even the smallest amount, {min_amount:.2f}, needs more than {payment:.2f} a month")
    high = min(max_amount, (payment * periods).quantize(KOPEK, rounding=ROUND_DOWN))
    if _fits(highest_for, high, payment):
        return high
    low = min_amount  # fits; high does not
    while high - low > KOPEK:
        middle = ((low + high) / 2).quantize(KOPEK, rounding=ROUND_DOWN)
        low, high = (middle, high) if _fits(highest_for, middle, payment) else (low, middle)
    return low


def shortest_term_for(
    payment: Decimal,
    highest_for_term: HighestForTerm,
    terms: Sequence[int],
    at_least: Callable[[int], Decimal] | None = None,
) -> int:
    """The shortest of `terms` whose schedule's highest payment is at most `payment`: each
    term is tried from the shortest, so the answer is exact whatever rounding does between
    neighbouring terms. `at_least(term)`, a floor under that term's highest payment (the amount
    over its number of payments: no payment can be below the average principal), skips the
    terms that cannot fit without building their schedules."""
    if payment <= 0 or payment != payment.quantize(KOPEK):
        raise ValueError("the payment must be positive, in kopecks")
    for term in terms:
        if at_least is not None and at_least(term) > payment:
            continue
        try:
            if highest_for_term(term) <= payment:
                return term
        except ScheduleError:
            continue
    if not terms:
        raise NothingFits("no term is allowed")
    raise NothingFits(f"even over {max(terms)} months it needs more than {payment:.2f} a month")
