"""A default: what the reserve fund covers of each investor's outstanding principal, and what
each investment loses.

The fund covers the outstanding principal up to what it holds; the cover and the
outstanding principal are each shared among the investors pro rata to what they lent
(largest remainder), and an investor's cover and loss among their investments in the loan by
amount, to the kopek. Cover + loss of every investment adds up to the outstanding principal.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from domain.allocation import Holding, split_pro_rata, weights_by_investor
from domain.money import ZERO


@dataclass(frozen=True)
class DefaultSplit:
    covered: Decimal
    # investor -> what the fund pays them (the reserve-cover postings)
    cover_by_investor: dict[uuid.UUID, Decimal]
    # investment -> (covered, lost)
    by_investment: dict[uuid.UUID, tuple[Decimal, Decimal]]

    @property
    def loss(self) -> Decimal:
        return sum((lost for _, lost in self.by_investment.values()), ZERO)


def reserve_cover(fund_balance: Decimal, outstanding_principal: Decimal) -> Decimal:
    """What the fund pays: the outstanding principal, up to what the fund holds."""
    return max(min(fund_balance, outstanding_principal), ZERO)


def split_default(outstanding_principal: Decimal, covered: Decimal, holdings: Sequence[Holding]) -> DefaultSplit:
    weights = weights_by_investor(holdings)
    outstanding_by_investor = split_pro_rata(outstanding_principal, weights)
    cover_by_investor = split_pro_rata(covered, weights)
    by_investment: dict[uuid.UUID, tuple[Decimal, Decimal]] = {}
    for investor_id in weights:
        by_amount = {h.investment_id: h.amount for h in holdings if h.investor_id == investor_id}
        cover = split_pro_rata(cover_by_investor[investor_id], by_amount)
        loss = split_pro_rata(outstanding_by_investor[investor_id] - cover_by_investor[investor_id], by_amount)
        for investment_id in by_amount:
            by_investment[investment_id] = (cover[investment_id], loss[investment_id])
    return DefaultSplit(covered=covered, cover_by_investor=cover_by_investor, by_investment=by_investment)
