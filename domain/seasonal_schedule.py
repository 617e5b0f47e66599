"""A seasonal (agricultural) schedule: the borrower pays only in the months the product names
(its harvest months), annuity-like over those paying months, exact to the kopek.

The rules, for a farmer and an auditor alike:
- The paying dates are the loan's monthly anniversaries (the start date plus k calendar
  months, as every schedule counts them, so dates never drift) that fall in a paying month,
  after the grace months: k in (grace_months, term_months]. The term is the longest the loan
  runs: its last payment is the last paying anniversary within it, so any term works whatever
  day the loan is paid out on (funding takes days; the request is checked for every starting
  month), as long as at least one paying date is left after the grace.
- Interest accrues exactly between two paying dates: balance x annual rate x months / 12,
  rounded half up to kopecks, where months is the number of months since the previous paying
  date (or since the disbursement for the first). Each month is a twelfth of a year, as in
  every schedule of the platform. Nothing is capitalised: each payment pays all the interest
  accrued since the one before.
- Annuity-like: every paying date but the last pays the same amount (the level payment); the
  last repays whatever principal is left with its interest, so principal sums to the amount
  exactly and the balance ends at zero. The level payment is the exact annuity over the
  paying dates (each period discounted by its own months), rounded to the kopek and then
  corrected, kopek by kopek, until every payment but the last pays exactly it, reduces the
  balance, and the last ends between nothing and the tolerance above it (1% of the payment or
  a kopek per paying date, whichever is more), as an ordinary annuity's does.
- A grace so long that the first payment could not even pay the interest it accrued is
  refused: the borrower would fall behind from the first harvest.

Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, localcontext

from domain.money import KOPEK, ZERO, round_money
from domain.schedule import _PRECISION, RATE_STEP, Installment, ScheduleError, due_date

MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass(frozen=True)
class PayingDate:
    payment_num: int
    months_from_start: int  # k: the anniversary this payment falls on
    months_since_last: int  # the months its interest accrues over
    due_date: date


@dataclass(frozen=True)
class SeasonalSchedule:
    amount: Decimal
    rate_annual: Decimal
    term_months: int
    paying_months: tuple[int, ...]
    grace_months: int
    start_date: date
    payment: Decimal  # the level payment of every paying date but the last
    installments: tuple[Installment, ...]

    @property
    def total_interest(self) -> Decimal:
        return sum((i.interest for i in self.installments), ZERO)

    @property
    def total_payable(self) -> Decimal:
        return self.amount + self.total_interest

    @property
    def highest_payment(self) -> Decimal:
        return max(i.total for i in self.installments)


def month_names(months: Iterable[int]) -> str:
    return ", ".join(MONTH_NAMES[m - 1] for m in sorted(months))


def paying_dates(
    start_date: date, term_months: int, paying_months: Iterable[int], grace_months: int
) -> list[PayingDate]:
    """The paying dates, with the months each one's interest accrues over."""
    months = _checked_months(paying_months)
    if isinstance(term_months, bool) or not isinstance(term_months, int) or term_months < 1:
        raise ScheduleError("the term is a whole number of months, at least 1")
    if isinstance(grace_months, bool) or not isinstance(grace_months, int) or not 0 <= grace_months < term_months:
        raise ScheduleError("the grace months must be zero or more and fewer than the term")
    dates: list[PayingDate] = []
    previous = 0
    for k in range(grace_months + 1, term_months + 1):
        due = due_date(start_date, k)
        if due.month in months:
            dates.append(PayingDate(len(dates) + 1, k, k - previous, due))
            previous = k
    if not dates:
        raise ScheduleError(
            f"no paying month ({month_names(months)}) falls in this term after its {grace_months} grace month(s)"
        )
    return dates


def _checked_months(paying_months: Iterable[int]) -> frozenset[int]:
    months = list(paying_months)
    if not months:
        raise ScheduleError("a seasonal plan needs at least one paying month")
    if any(isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= 12 for m in months):
        raise ScheduleError("paying months are numbered 1 (January) to 12 (December)")
    if len(set(months)) != len(months):
        raise ScheduleError("each paying month is named once")
    return frozenset(months)


def accrued_interest(balance: Decimal, rate_annual: Decimal, months: int) -> Decimal:
    """balance x annual rate x months / 12, rounded half up (the division last)."""
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        return round_money(balance * rate_annual * months / Decimal(1200))


def exact_level_payment(amount: Decimal, rate_annual: Decimal, dates: list[PayingDate]) -> Decimal:
    """The payment P, not rounded, with amount = sum of P discounted over each period's months:
    P x sum_k prod_{j<=k} 1 / (1 + r x m_j), r the monthly rate."""
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        r = rate_annual / Decimal(1200)
        discount, total = Decimal(1), Decimal(0)
        for d in dates:
            discount /= 1 + r * d.months_since_last
            total += discount
        return amount / total


def _amortize(amount: Decimal, rate_annual: Decimal, dates: list[PayingDate], payment: Decimal) -> list[Installment]:
    installments: list[Installment] = []
    balance = amount
    for d in dates:
        interest = accrued_interest(balance, rate_annual, d.months_since_last)
        if d is dates[-1]:
            principal = balance
        else:
            principal = min(max(payment - interest, ZERO), balance)
        balance -= principal
        installments.append(Installment(d.payment_num, d.due_date, principal, interest, balance))
    return installments


def last_installment_tolerance(payment: Decimal, payments: int) -> Decimal:
    return max(round_money(payment / 100), KOPEK * payments)


def _sound(installments: list[Installment], payment: Decimal) -> bool:
    """Every payment but the last is exactly `payment`, pays some principal and leaves a
    balance; the last is positive and at most the tolerance above the payment."""
    middle, last = installments[:-1], installments[-1]
    return (
        all(i.total == payment and i.principal > 0 and i.balance_after > 0 for i in middle)
        and last.principal > 0
        and last.total - payment <= last_installment_tolerance(payment, len(installments))
    )


def build_seasonal_schedule(
    amount: Decimal,
    rate_annual: Decimal,
    term_months: int,
    start_date: date,
    paying_months: Iterable[int],
    grace_months: int = 0,
) -> SeasonalSchedule:
    """The seasonal schedule, or a ScheduleError saying why these terms cannot have one."""
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0 or amount != amount.quantize(KOPEK):
        raise ScheduleError("the amount must be positive with at most two decimals")
    if not isinstance(rate_annual, Decimal) or not rate_annual.is_finite() or rate_annual < 0:
        raise ScheduleError("the annual rate must be zero or positive")
    if rate_annual != rate_annual.quantize(RATE_STEP):
        raise ScheduleError("the annual rate has more than four decimals")
    months = tuple(sorted(_checked_months(paying_months)))
    dates = paying_dates(start_date, term_months, months, grace_months)
    if amount < KOPEK * len(dates):
        raise ScheduleError("each payment would repay under a kopek; choose a larger amount or fewer paying months")
    first_interest = accrued_interest(amount, rate_annual, dates[0].months_since_last)
    formula = exact_level_payment(amount, rate_annual, dates).quantize(KOPEK, rounding=ROUND_HALF_UP)
    if len(dates) > 1 and formula <= first_interest:
        raise ScheduleError(
            "the grace is too long for this term: the first payment could not pay the interest accrued by then"
        )

    def schedule_at(payment: Decimal) -> list[Installment]:
        return _amortize(amount, rate_annual, dates, payment)

    # Newton steps from the formula's payment: one kopek more lowers the last installment by
    # about a kopek grown over each later period.
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        r = rate_annual / Decimal(1200)
        growth, slope = Decimal(1), Decimal(0)
        for d in reversed(dates[1:]):
            growth *= 1 + r * d.months_since_last
            slope += growth
        slope = max(slope, Decimal(1))
    payment, tried = formula, set()
    for _ in range(8):
        if payment <= 0 or payment in tried:
            break
        tried.add(payment)
        installments = schedule_at(payment)
        if _sound(installments, payment):
            return _schedule(amount, rate_annual, term_months, months, grace_months, start_date, payment, installments)
        miss = installments[-1].total - payment + sum((i.total - payment for i in installments[:-1]), ZERO)
        step = (miss / slope / KOPEK).to_integral_value(ROUND_HALF_UP)
        payment += (step or (1 if miss > 0 else -1)) * KOPEK

    # The exact answer: the largest payment whose balance lasts to the last date leaves the
    # smallest last installment; if it is not sound, no kopek payment is.
    def lasts(payment: Decimal) -> bool:
        return all(i.balance_after > 0 for i in schedule_at(payment)[:-1])

    low, high = KOPEK, amount + first_interest + KOPEK
    while high - low > KOPEK:
        middle = ((low + high) / 2).quantize(KOPEK, rounding=ROUND_DOWN)
        low, high = (middle, high) if lasts(middle) else (low, middle)
    largest = low
    if _sound(schedule_at(largest), largest):
        # Below the largest lasting payment, a payment is sound from some smallest one on (a
        # larger payment leaves smaller balances, so it covers every gap's interest and leaves
        # a smaller last): that smallest one is the schedule, its last installment as near the
        # others as the gaps allow. (When a long gap's interest is above the exact annuity,
        # the payment is what covers it, not the annuity: README "Financing modalities".)
        low, high = KOPEK, largest  # low is not sound (or is the kopek); high is
        if _sound(schedule_at(low), low):
            high = low
        while high - low > KOPEK:
            middle = ((low + high) / 2).quantize(KOPEK, rounding=ROUND_DOWN)
            low, high = (low, middle) if _sound(schedule_at(middle), middle) else (middle, high)
        return _schedule(amount, rate_annual, term_months, months, grace_months, start_date, high, schedule_at(high))
    raise ScheduleError(
        "these terms cannot be scheduled to the kopek over these paying months; "
        "choose a shorter term, a lower rate or a larger amount"
    )


def _schedule(
    amount: Decimal,
    rate_annual: Decimal,
    term_months: int,
    months: tuple[int, ...],
    grace_months: int,
    start_date: date,
    payment: Decimal,
    installments: list[Installment],
) -> SeasonalSchedule:
    return SeasonalSchedule(
        amount=amount,
        rate_annual=rate_annual,
        term_months=term_months,
        paying_months=months,
        grace_months=grace_months,
        start_date=start_date,
        payment=payment,
        installments=tuple(installments),
    )
