"""Late fees: a function of the overdue amount and the days it stayed overdue.

fee for a stretch of days = overdue amount x (percent per day / 100) x chargeable days,
where a day is chargeable once the installment is more than `grace_days` days overdue.
Partial payments change the overdue amount, so the fee is accrued stretch by stretch, but
exactly (`late_fee_exact`), and the total rounded half up to kopecks once: the fee for an
overdue span does not depend on how often the workflow woke during it. No timer per day:
the workflow computes it when it collects (or defaults).
"""

from __future__ import annotations

from decimal import Decimal

from domain.money import ZERO, round_money


def chargeable_days(grace_days: int, from_day: int, to_day: int) -> int:
    """Days in (from_day, to_day] that lie beyond the grace period (days counted overdue)."""
    start = max(from_day, grace_days)
    return max(0, to_day - start)


def accrue_late_fee(
    overdue_amount: Decimal, percent_per_day: Decimal, grace_days: int, from_day: int, to_day: int
) -> Decimal:
    """The fee for keeping `overdue_amount` overdue from day `from_day` to day `to_day`."""
    if overdue_amount <= 0 or to_day <= from_day:
        return ZERO
    days = chargeable_days(grace_days, from_day, to_day)
    return round_money(overdue_amount * percent_per_day / Decimal(100) * days)


def late_fee_exact(
    overdue_amount: Decimal, percent_per_day: Decimal, grace_days: int, from_day: int, to_day: int
) -> Decimal:
    """The fee for keeping `overdue_amount` overdue from day `from_day` to day `to_day`, not
    rounded: stretches add up exactly, and their sum is rounded once (round_money)."""
    if overdue_amount <= 0 or to_day <= from_day:
        return Decimal(0)
    return overdue_amount * percent_per_day / Decimal(100) * chargeable_days(grace_days, from_day, to_day)
