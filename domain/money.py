"""Exact money: Decimal rounded half up to the kopek. Never float."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

KOPEK = Decimal("0.01")
ZERO = Decimal("0.00")


def round_money(value: Decimal) -> Decimal:
    """Round half up to kopecks, as the seed's schedule does."""
    return value.quantize(KOPEK, rounding=ROUND_HALF_UP)


def floor_money(value: Decimal) -> Decimal:
    return value.quantize(KOPEK, rounding=ROUND_DOWN)


def has_at_most_two_decimals(value: Decimal) -> bool:
    return value == value.quantize(KOPEK)


def format_money(value: Decimal) -> str:
    """Amounts as they travel in JSON: "1234.56"."""
    return f"{Decimal(value).quantize(KOPEK, rounding=ROUND_HALF_UP):f}"


def format_rate(value: Decimal) -> str:
    """A rate in percent as it is stored and travels in JSON: two decimals at least, four at
    most ("14.00", "9.4822")."""
    text = f"{Decimal(value).quantize(Decimal('0.0001'), rounding=ROUND_HALF_UP):f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"
