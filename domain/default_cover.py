"""A default: what the reserve fund covers of each investor's outstanding principal, and what
each investment loses.

The fund covers the outstanding principal up to what it holds. Each investment is owed the
principal its agreement names and it has not yet received (loans/investor_shares.py); the
cover is shared among the investments pro rata to that, to the kopek, and the rest is each
one's loss. Cover + loss of every investment is what it was owed; together, the outstanding
principal.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from domain.allocation import split_pro_rata
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


def split_default(
    covered: Decimal, outstanding_by_investment: Mapping[uuid.UUID, Decimal], investor_of: Mapping[uuid.UUID, uuid.UUID]
) -> DefaultSplit:
    """The fund's cover shared among the investments pro rata to the principal each is still
    owed under its agreement (largest remainder; nobody is covered above what they are owed);
    the rest of what each is owed is its loss."""
    cover = split_pro_rata(covered, outstanding_by_investment)
    by_investment = {k: (cover[k], owed - cover[k]) for k, owed in outstanding_by_investment.items()}
    cover_by_investor: dict[uuid.UUID, Decimal] = {}
    for investment_id, (part, _) in by_investment.items():
        investor_id = investor_of[investment_id]
        cover_by_investor[investor_id] = cover_by_investor.get(investor_id, ZERO) + part
    return DefaultSplit(covered=covered, cover_by_investor=cover_by_investor, by_investment=by_investment)
