"""Repayment schedules: annuity and differentiated (equal principal), exact to the kopek.

The rules, for a borrower and an auditor alike:
- The periodic rate is the annual rate / 12 (each month is a twelfth of a year, whatever
  its number of days: the convention of consumer annuity loans and of our seed).
- Interest of a period = outstanding balance x periodic rate, rounded half up to kopecks.
- Annuity: the payment is amount x r(1+r)^n / ((1+r)^n - 1), rounded half up; each period's
  principal is the payment minus that period's interest. Zero rate: amount / n.
  A kopek of rounding in the payment compounds: on a long high-rate loan it grows, month
  after month, into thousands of roubles left for (or missing from) the last installment.
  So the half-up payment is corrected, kopek by kopek (Newton steps on the last installment,
  which moves almost linearly with the payment), until the schedule is sound: every month
  but the last pays exactly the payment and reduces the balance, and the last installment
  ends between nothing and the tolerance above the payment.
- No monster at the end: the tolerance is 1% of the payment or one kopek per month of the
  term, whichever is more. Terms where a kopek of payment moves the last installment by
  more than that window is wide cannot be rounded to kopecks (4,890,435.23 at 73.82% over
  282 months: one kopek moves it by about 3 million) and are refused with a ScheduleError:
  Whether a loan schedules is decided exactly, by the search (the calculator, simulations
  and requests); product limits are judged by `check_schedulable_with_margin`, a sufficient
  rule that only gets harder as the amount falls and the term grows.
- Differentiated: principal = amount / n rounded half up (down if that would leave nothing
  for the last month); interest on the falling balance.
- The last installment repays whatever principal is left, so principal sums to the amount
  exactly and the balance ends at zero; its total absorbs the rounding of all periods.
- Optional interest-only months at the start: interest only, the balance stays whole; the
  remaining months amortize the full amount.
- Due date k is the start date plus k calendar months, each counted from the start (a loan
  taken on 31 January is due 28/29 February, 31 March, 30 April, ...), so dates never drift.

Pure functions, no I/O: imported by the API, activities and (deterministically) workflows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal, localcontext
from typing import Literal

from dateutil.relativedelta import relativedelta

from domain.money import KOPEK, ZERO, round_money

Method = Literal["annuity", "differentiated", "seasonal"]

# Rates are priced to a ten-thousandth of a percent (9.4822% a year), as lenders price them.
RATE_STEP = Decimal("0.0001")

# Enough digits that (1 + r)^n for n up to 600 months stays exact to far below a kopek.
_PRECISION = 60


@dataclass(frozen=True)
class Installment:
    payment_num: int
    due_date: date
    principal: Decimal
    interest: Decimal
    balance_after: Decimal
    interest_only: bool = False

    @property
    def total(self) -> Decimal:
        return self.principal + self.interest


@dataclass(frozen=True)
class Schedule:
    method: Method
    amount: Decimal
    rate_annual: Decimal
    term_months: int
    interest_only_months: int
    start_date: date
    # Annuity: the level payment. Differentiated: the first (largest) amortizing payment.
    payment: Decimal
    installments: tuple[Installment, ...]
    # The seasonal plan (domain/seasonal_schedule.py): its paying months and grace.
    paying_months: tuple[int, ...] = ()
    grace_months: int = 0

    @property
    def total_interest(self) -> Decimal:
        return sum((i.interest for i in self.installments), ZERO)

    @property
    def total_payable(self) -> Decimal:
        return self.amount + self.total_interest

    @property
    def highest_payment(self) -> Decimal:
        """The most the borrower will owe in any one month (a differentiated loan's first
        amortizing payment; an annuity's level payment or, by a few kopecks, its last)."""
        return max(i.total for i in self.installments)

    @property
    def highest_monthly_burden(self) -> Decimal:
        """The most any one month carries: the highest payment, or for a seasonal plan each
        payment spread over the months since the one before (a harvest pays for the months
        that led to it), rounded up to the kopek. What a debt-to-income test weighs."""
        if self.method != "seasonal":
            return self.highest_payment
        burden, previous = ZERO, 0
        for item in self.installments:
            k = months_between(self.start_date, item.due_date)
            burden = max(burden, (item.total / (k - previous)).quantize(KOPEK, rounding=ROUND_UP))
            previous = k
        return burden


class ScheduleError(ValueError):
    """The inputs cannot make a schedule (a message a borrower can read)."""


def monthly_rate(rate_annual: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        return rate_annual / Decimal(1200)


def annuity_payment(amount: Decimal, rate_annual: Decimal, periods: int) -> Decimal:
    """The level monthly payment that repays `amount` in `periods` months, rounded half up."""
    if periods < 1:
        raise ScheduleError("at least one amortizing month is needed")
    if rate_annual == 0:
        return round_money(amount / periods)
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        r = monthly_rate(rate_annual)
        growth = (1 + r) ** periods
        payment = amount * r * growth / (growth - 1)
    return payment.quantize(KOPEK, rounding=ROUND_HALF_UP)


def months_between(start_date: date, later: date) -> int:
    """The k with due_date(start_date, k) == later (whole calendar months)."""
    return (later.year - start_date.year) * 12 + later.month - start_date.month


def due_date(start_date: date, payment_num: int) -> date:
    due: date = start_date + relativedelta(months=payment_num)
    return due


def period_interest(balance: Decimal, rate_annual: Decimal) -> Decimal:
    """balance x annual rate / 12, rounded half up. The division comes last: a truncated
    periodic rate would turn an exact half kopek (450 x 1.96% / 12 = 0.735) into 0.73."""
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        return round_money(balance * rate_annual / Decimal(1200))


def _validate(amount: Decimal, rate_annual: Decimal, term_months: int, interest_only_months: int) -> None:
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise ScheduleError("the amount must be a positive number")
    if amount != amount.quantize(KOPEK):
        raise ScheduleError("the amount has more than two decimals")
    if not isinstance(rate_annual, Decimal) or not rate_annual.is_finite() or rate_annual < 0:
        raise ScheduleError("the annual rate must be zero or positive")
    if rate_annual != rate_annual.quantize(RATE_STEP):
        raise ScheduleError("the annual rate has more than four decimals")
    if isinstance(term_months, bool) or not isinstance(term_months, int) or term_months < 1:
        raise ScheduleError("the term is a whole number of months, at least 1")
    if interest_only_months < 0 or interest_only_months >= term_months:
        raise ScheduleError("interest-only months must be fewer than the term")


def _amortize(
    amount: Decimal,
    rate_annual: Decimal,
    term_months: int,
    start_date: date,
    interest_only_months: int,
    payment: Decimal | None,
    level_principal: Decimal | None,
) -> list[Installment]:
    installments: list[Installment] = []
    balance = amount
    for num in range(1, term_months + 1):
        interest = period_interest(balance, rate_annual)
        if num <= interest_only_months:
            principal = ZERO
        elif num == term_months:
            principal = balance
        elif level_principal is not None:
            principal = min(level_principal, balance)
        else:
            assert payment is not None
            principal = min(max(payment - interest, ZERO), balance)
        balance = balance - principal
        installments.append(
            Installment(
                payment_num=num,
                due_date=due_date(start_date, num),
                principal=principal,
                interest=interest,
                balance_after=balance,
                interest_only=num <= interest_only_months,
            )
        )
    return installments


def _annuity_is_sound(installments: list[Installment], payment: Decimal, interest_only_months: int) -> bool:
    """Every amortizing month but the last pays exactly `payment` and reduces the balance,
    and the balance lasts until the last month."""
    middle = installments[interest_only_months:-1]
    return all(i.total == payment and i.principal > 0 and i.balance_after > 0 for i in middle)


def last_installment_tolerance(payment: Decimal, term_months: int) -> Decimal:
    """How far above the regular payment the last installment may end: 1% of the payment
    or a kopek per month of the term (the rounding a month can leave), whichever is more."""
    return max(round_money(payment / 100), KOPEK * term_months)


# Newton steps on the payment before the exact search (one or two suffice almost always).
_PAYMENT_CORRECTIONS = 8

_UNSCHEDULABLE = (
    "these terms cannot be scheduled to the kopek: at this rate and term one kopek of monthly "
    "payment changes the last installment by more than its tolerance, so it would end far from "
    "the others; choose a shorter term, a lower rate or a larger amount"
)
_UNDER_A_KOPEK = "the monthly payment would be under a kopek; choose a shorter term or a larger amount"
# Product limits ask at least this of a monthly payment (the margin rule's floor).
_SMALLEST_PRODUCT_PAYMENT = Decimal("1.00")


def _kopek_moves_last_by(rate_annual: Decimal, amortizing: int) -> Decimal:
    """About how much one kopek more of monthly payment lowers the last installment: each
    kopek pays down a balance that then does not grow for the months left. (Each month's
    interest is rounded, so two neighbouring kopecks may move it by up to twice this.)"""
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        growth = 1 + monthly_rate(rate_annual)
        return KOPEK * (sum((growth**k for k in range(1, amortizing)), Decimal(0)) + 1)


def check_schedulable_with_margin(
    amount: Decimal, rate_annual: Decimal, term_months: int, interest_only_months: int = 0
) -> None:
    """Refuses (ScheduleError) an annuity unless two kopecks' moves of its last installment fit
    in the window a sound last installment may end in (above nothing, at most the tolerance
    above the payment), and the payment is at least a rouble: then the kopek search cannot
    step over the window, and the loan schedules. Harder as the amount falls and the term
    grows, so for a product's limits its smallest amount over its longest term, at each of
    its rates, answers for every loan they allow. (A single loan is judged exactly, by build_schedule's search.)"""
    _validate(amount, rate_annual, term_months, interest_only_months)
    amortizing = term_months - interest_only_months
    payment = annuity_payment(amount, rate_annual, amortizing)
    if payment < KOPEK or amount < KOPEK * amortizing:
        raise ScheduleError(_UNDER_A_KOPEK)
    if payment < _SMALLEST_PRODUCT_PAYMENT:
        # (a payment of a few kopecks can be eaten by one month's interest rounded up)
        raise ScheduleError(f"the monthly payment would be under {_SMALLEST_PRODUCT_PAYMENT}")
    if 2 * _kopek_moves_last_by(rate_annual, amortizing) > payment + last_installment_tolerance(payment, term_months):
        raise ScheduleError(_UNSCHEDULABLE)


def _level_annuity(
    amount: Decimal, rate_annual: Decimal, term_months: int, start_date: date, interest_only_months: int
) -> tuple[Decimal, list[Installment]]:
    """The level payment and its schedule: sound (every month but the last pays exactly the
    payment and leaves a balance), the last installment at most the tolerance above it.
    Refused only if no kopek payment gives that."""
    amortizing = term_months - interest_only_months
    formula = annuity_payment(amount, rate_annual, amortizing)
    if formula < KOPEK or amount < KOPEK * amortizing:
        raise ScheduleError(_UNDER_A_KOPEK)

    def schedule_at(payment: Decimal) -> list[Installment]:
        return _amortize(amount, rate_annual, term_months, start_date, interest_only_months, payment, None)

    def acceptable(payment: Decimal, installments: list[Installment]) -> bool:
        return _annuity_is_sound(installments, payment, interest_only_months) and installments[
            -1
        ].total - payment <= last_installment_tolerance(payment, term_months)

    # Newton steps from the formula's payment, aiming at a last installment equal to it.
    slope = _kopek_moves_last_by(rate_annual, amortizing) / KOPEK
    payment, tried = formula, set()
    for _ in range(_PAYMENT_CORRECTIONS):
        if payment <= 0 or payment in tried:
            break
        tried.add(payment)
        installments = schedule_at(payment)
        if acceptable(payment, installments):
            return payment, installments
        # What the schedule misses by, counted at its end: the last installment's excess, plus
        # whatever months that did not pay exactly `payment` (a balance run out early, or
        # interest that ate the payment) put off or brought forward.
        miss = installments[-1].total - payment
        miss += sum((i.total - payment for i in installments[interest_only_months:-1]), ZERO)
        step = (miss / slope / KOPEK).to_integral_value(ROUND_HALF_UP)
        payment += (step or (1 if miss > 0 else -1)) * KOPEK

    # The exact answer. A larger payment leaves a smaller balance every month, so the
    # payments whose balance lasts to the last month are those up to some largest one, and
    # that one leaves the smallest last installment of all: if it is sound and within the
    # tolerance it is the schedule, and if not, no kopek payment is.
    def lasts(payment: Decimal) -> bool:
        return all(i.balance_after > 0 for i in schedule_at(payment)[interest_only_months:-1])

    # (A single amortizing month has nothing to last through: the formula's payment is its
    # whole balance with the interest, and Newton's first step took it.)
    # low lasts; high does not (with two or more amortizing months)
    low, high = KOPEK, amount + period_interest(amount, rate_annual) + KOPEK
    while high - low > KOPEK:
        middle = ((low + high) / 2).quantize(KOPEK, rounding=ROUND_DOWN)
        low, high = (middle, high) if lasts(middle) else (low, middle)
    installments = schedule_at(low)
    if acceptable(low, installments):
        return low, installments
    raise ScheduleError(_UNSCHEDULABLE)


def _legacy_level_annuity(
    amount: Decimal, rate_annual: Decimal, term_months: int, start_date: date, interest_only_months: int
) -> tuple[Decimal, list[Installment]]:
    """The payment as loans disbursed before the patch borrowers-time fixed it (their
    workflows rebuild their schedule on replay): half up, or a kopek down if that repaid the
    loan early; refused only if neither was sound."""
    payment = annuity_payment(amount, rate_annual, term_months - interest_only_months)
    installments = _amortize(amount, rate_annual, term_months, start_date, interest_only_months, payment, None)
    if not _annuity_is_sound(installments, payment, interest_only_months):
        payment = payment - KOPEK if payment > KOPEK else payment
        installments = _amortize(amount, rate_annual, term_months, start_date, interest_only_months, payment, None)
        if not _annuity_is_sound(installments, payment, interest_only_months):
            raise ScheduleError(
                "at this rate and term the monthly payment would barely cover the interest; "
                "choose a shorter term, a lower rate or a larger amount"
            )
    return payment, installments


def build_schedule(
    amount: Decimal,
    rate_annual: Decimal,
    term_months: int,
    start_date: date,
    method: Method = "annuity",
    interest_only_months: int = 0,
    legacy_rounding: bool = False,
    paying_months: Sequence[int] = (),
    grace_months: int = 0,
) -> Schedule:
    """The schedule. `legacy_rounding`: the rules before the patch borrowers-time, for loan
    workflows disbursed under them (they rebuild the schedule when they replay). `seasonal`:
    payments only in `paying_months` after `grace_months` (domain/seasonal_schedule.py)."""
    if method == "seasonal":
        from domain.seasonal_schedule import build_seasonal_schedule  # (it builds on this module)

        if interest_only_months:
            raise ScheduleError("a seasonal plan has grace months, not interest-only months")
        seasonal = build_seasonal_schedule(amount, rate_annual, term_months, start_date, paying_months, grace_months)
        return Schedule(
            method=method,
            amount=amount,
            rate_annual=rate_annual,
            term_months=term_months,
            interest_only_months=0,
            start_date=start_date,
            payment=seasonal.payment,
            installments=seasonal.installments,
            paying_months=seasonal.paying_months,
            grace_months=grace_months,
        )
    _validate(amount, rate_annual, term_months, interest_only_months)
    rate = rate_annual
    amortizing = term_months - interest_only_months
    if method == "annuity":
        level = _legacy_level_annuity if legacy_rounding else _level_annuity
        payment, installments = level(amount, rate, term_months, start_date, interest_only_months)
    elif method == "differentiated":
        if not legacy_rounding and amount < KOPEK * amortizing:
            raise ScheduleError(
                "the monthly principal would be under a kopek; choose a shorter term or a larger amount"
            )
        level_principal = round_money(amount / amortizing)
        if not legacy_rounding and level_principal * (amortizing - 1) >= amount:
            level_principal = (amount / amortizing).quantize(KOPEK, rounding=ROUND_DOWN)
        installments = _amortize(amount, rate, term_months, start_date, interest_only_months, None, level_principal)
        payment = installments[interest_only_months].total
    else:
        raise ScheduleError(f"unknown method {method!r}: annuity, differentiated or seasonal")
    return Schedule(
        method=method,
        amount=amount,
        rate_annual=rate_annual,
        term_months=term_months,
        interest_only_months=interest_only_months,
        start_date=start_date,
        payment=payment,
        installments=tuple(installments),
    )
