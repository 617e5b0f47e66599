"""Splitting money among investors pro rata, to the kopek (largest remainder)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import TypeVar

from domain.money import KOPEK, ZERO

K = TypeVar("K")


def split_pro_rata(total: Decimal, weights: Mapping[K, Decimal]) -> dict[K, Decimal]:
    """Each key gets total x weight / sum(weights), rounded down to kopecks; the kopecks left
    over go one each to the largest remainders (ties: the larger weight, then the key's
    order as given). The parts always sum to `total` exactly."""
    if total < 0:
        raise ValueError("cannot split a negative amount")
    if total != total.quantize(KOPEK):
        raise ValueError("the total must be in kopecks")
    positive = {k: w for k, w in weights.items() if w > 0}
    if not positive:
        if total == 0:
            return {k: ZERO for k in weights}
        raise ValueError("nobody to split among")
    weight_sum = sum(positive.values(), ZERO)
    shares: dict[K, Decimal] = {}
    remainders: list[tuple[Decimal, Decimal, int, K]] = []
    for index, (key, weight) in enumerate(positive.items()):
        exact = total * weight / weight_sum
        floor = exact.quantize(KOPEK, rounding=ROUND_DOWN)
        shares[key] = floor
        remainders.append((exact - floor, weight, -index, key))
    leftover = int((total - sum(shares.values(), ZERO)) / KOPEK)
    for _, _, _, key in sorted(remainders, key=lambda r: (r[0], r[1], r[2]), reverse=True)[:leftover]:
        shares[key] += KOPEK
    return {k: shares.get(k, ZERO) for k in weights}


@dataclass(frozen=True)
class Holding:
    """One investment in a loan: who lent how much."""

    investment_id: uuid.UUID
    investor_id: uuid.UUID
    amount: Decimal


def weights_by_investor(holdings: Sequence[Holding]) -> dict[uuid.UUID, Decimal]:
    """What each investor lent to the loan, over all their investments in it (in the order
    their first investment came): the weights money from the loan is shared by."""
    weights: dict[uuid.UUID, Decimal] = {}
    for holding in holdings:
        weights[holding.investor_id] = weights.get(holding.investor_id, ZERO) + holding.amount
    return weights
