"""XIRR: the annual rate of return of money moved on given days.

Definition (actual/365): for flows (day_i, amount_i), negative for money put in and positive
for money got back, and t_i = (day_i - first day) / 365 years, the rate r > -1 with

    sum_i amount_i / (1 + r) ** t_i = 0

A year is 365 days whatever the calendar says, as the money market counts (and Excel's XIRR):
a loan of 1,000 that pays back 1,100 after 365 days earns exactly 10 %, leap year or not.

How it is found, and why so:
- Flows on the same day are added up first: the rate only sees what moved on each day.
- No rate exists when every flow has one sign (nothing put in, or nothing got back), and none
  can be told from another when all of it moved on one day: None then.
- The equation is solved in L = ln(1 + r), where each term is amount_i * exp(-t_i * L), and
  scaled by a positive factor that makes the largest exponent 0: no term overflows anywhere
  in the range, however long the flows span, and the sign (all the search needs) is kept.
- Amounts are divided by the largest (exact Decimal arithmetic) before they become floats, so
  scaling every flow by the same factor gives exactly the same rate.
- The search is a bracket then bisection, not Newton alone: Newton from a guess can run off to
  a root far from the answer, or nowhere, on a portfolio with losses. The bracket is the first
  sign change found stepping outwards from r = 0 on a grid over (-0.9999, 1000); a flow of
  money in first and out after (one sign change in time) has exactly one root, found always;
  flows with several sign changes may have several roots, and this gives the one nearest to
  r = 0. No sign change on the grid: None (no root in the range, or only roots closer
  together than the grid's step, which no real portfolio has).
- Bisection halves a bracket whose size it knows, so it always ends: at 1e-13 of (1 + r),
  and the rate is given to 12 decimals.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal

# The range a rate is looked for in: -99.99 % (almost everything lost) to 100,000 % a year.
LOWEST_RATE = Decimal("-0.9999")
HIGHEST_RATE = Decimal("1000")
DAYS_IN_YEAR = 365

_LOW = math.log1p(float(LOWEST_RATE))
_HIGH = math.log1p(float(HIGHEST_RATE))
# The grid's step in L = ln(1 + r): 0.05 is about 5 % of rate near 0.
_STEP = 0.05
# Bisection stops when the bracket is this narrow in L (a relative 1e-13 in 1 + r).
_TOLERANCE = 1e-13
_ROUND_TO = Decimal("1e-12")


def xirr(flows: Sequence[tuple[date, Decimal]]) -> Decimal | None:
    """The annual rate r (0.1 = 10 % a year, actual/365) at which the flows' present value is
    zero; None when there is no such rate in (-0.9999, 1000): every flow has one sign, all fall
    on one day, or no root lies in the range. See the module's docstring for the definition."""
    by_day: dict[date, Decimal] = {}
    for day, amount in flows:
        by_day[day] = by_day.get(day, Decimal(0)) + Decimal(amount)
    dated = sorted((day, amount) for day, amount in by_day.items() if amount != 0)
    if not any(a > 0 for _, a in dated) or not any(a < 0 for _, a in dated):
        return None
    first, last = dated[0][0], dated[-1][0]
    if first == last:
        return None
    largest = max(abs(a) for _, a in dated)
    years = [(day - first).days / DAYS_IN_YEAR for day, _ in dated]
    amounts = [float(a / largest) for _, a in dated]
    span = years[-1]
    f = _scaled_present_value(years, amounts, span)
    bracket = _bracket(f)
    if bracket is None:
        return None
    low, high = bracket
    log_rate = _bisect(f, low, high)
    return Decimal(math.expm1(log_rate)).quantize(_ROUND_TO)


def _scaled_present_value(years: list[float], amounts: list[float], span: float) -> Callable[[float], float]:
    """The present value at L = ln(1 + r), times exp(reference * L) > 0, where the reference
    (the first day when L >= 0, the last when L < 0) makes every exponent at most 0."""

    def value(log_rate: float) -> float:
        reference = 0.0 if log_rate >= 0 else span
        return math.fsum(a * math.exp(-(t - reference) * log_rate) for t, a in zip(years, amounts))

    return value


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _bracket(f: Callable[[float], float]) -> tuple[float, float] | None:
    """The nearest sign change to L = 0 on the grid, stepping outwards both ways at once."""
    at_zero = _sign(f(0.0))
    if at_zero == 0:
        return (0.0, 0.0)
    # Each direction: its last point and the sign there; None once it has passed its end.
    up: tuple[float, int] | None = (0.0, at_zero)
    down: tuple[float, int] | None = (0.0, at_zero)
    while up is not None or down is not None:
        if up is not None:
            x, s = up
            nxt = min(x + _STEP, _HIGH)
            sign = _sign(f(nxt))
            if sign != s:
                return (nxt, nxt) if sign == 0 else (x, nxt)
            up = None if nxt >= _HIGH else (nxt, sign)
        if down is not None:
            x, s = down
            nxt = max(x - _STEP, _LOW)
            sign = _sign(f(nxt))
            if sign != s:
                return (nxt, nxt) if sign == 0 else (nxt, x)
            down = None if nxt <= _LOW else (nxt, sign)
    return None


def _bisect(f: Callable[[float], float], low: float, high: float) -> float:
    """A root of f in [low, high], where f changes sign (or low == high is one)."""
    low_sign = _sign(f(low))
    while high - low > _TOLERANCE:
        middle = (low + high) / 2
        if middle in (low, high):  # no float left between them
            break
        sign = _sign(f(middle))
        if sign == 0:
            return middle
        if sign == low_sign:
            low = middle
        else:
            high = middle
    return (low + high) / 2
