"""Each investment's part of a loan's money, to the kopek: the one rule behind both the
figures of an investor's agreement and what each collection pays them.

The agreement (`agreed_shares`): an investment's principal over the loan's life is exactly
what it lent; its interest is the loan's total interest split by amount lent (largest
remainder). Installment by installment, each kind of money is split by what each investment
is still owed of it (`split_by_what_is_owed`): a kopek that rounding gives one investment
today is one kopek less it is owed tomorrow, so ties do not always favour the same investor,
no part is ever negative, and the installments add up to the totals exactly.

A collection (`split_by_what_is_owed` again): money paid on an installment is split by what
each investment is still owed of that installment's principal or interest under its
agreement. Nobody is paid more than they are owed, and once the installment is paid in full
each investment has received exactly its agreement's figures, however many partial
payments it took. Late fees, which no agreement fixes, are split by each investment's
part of the installment they were charged on.

Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from domain.allocation import split_pro_rata
from domain.money import ZERO

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class ScheduledAmounts:
    """One installment of the loan's schedule."""

    payment_num: int
    principal: Decimal
    interest: Decimal


@dataclass(frozen=True)
class AgreedShare:
    """One investment's part of one installment."""

    payment_num: int
    principal: Decimal
    interest: Decimal

    @property
    def total(self) -> Decimal:
        return self.principal + self.interest


def split_by_what_is_owed(amount: Decimal, owed: Mapping[K, Decimal]) -> dict[K, Decimal]:
    """`amount` split pro rata to what each is owed (largest remainder): nobody gets more than
    they are owed, and paying everything that is owed pays each exactly their due."""
    total_owed = sum(owed.values(), ZERO)
    if amount > total_owed:
        raise ValueError(f"{amount:.2f} is more than the {total_owed:.2f} owed")
    return split_pro_rata(amount, owed)


def agreed_shares(installments: Sequence[ScheduledAmounts], lent: Mapping[K, Decimal]) -> dict[K, list[AgreedShare]]:
    """Every investment's part of every installment (in the installments' order). `lent`: each
    investment's amount, in the order investments were made; they add up to the principal."""
    principal = sum((i.principal for i in installments), ZERO)
    if sum(lent.values(), ZERO) != principal:
        raise ValueError("the investments do not add up to the loan's principal")
    interest = sum((i.interest for i in installments), ZERO)
    owed_principal = dict(lent)
    owed_interest = split_pro_rata(interest, lent)
    shares: dict[K, list[AgreedShare]] = {k: [] for k in lent}
    for item in installments:
        principal_parts = split_by_what_is_owed(item.principal, owed_principal)
        interest_parts = split_by_what_is_owed(item.interest, owed_interest)
        for k in lent:
            shares[k].append(AgreedShare(item.payment_num, principal_parts[k], interest_parts[k]))
            owed_principal[k] -= principal_parts[k]
            owed_interest[k] -= interest_parts[k]
    return shares


@dataclass(frozen=True)
class Receipt:
    """What one collection pays one investment on one installment."""

    principal: Decimal
    interest: Decimal
    fee: Decimal

    @property
    def total(self) -> Decimal:
        return self.principal + self.interest + self.fee

    def __add__(self, other: Receipt) -> Receipt:
        return Receipt(self.principal + other.principal, self.interest + other.interest, self.fee + other.fee)


@dataclass(frozen=True)
class Entitlement:
    """One investment's standing on one installment: its agreed part and what it has received."""

    agreed: AgreedShare
    received_principal: Decimal
    received_interest: Decimal


def split_installment_payment(
    principal: Decimal, interest: Decimal, fee: Decimal, standing: Mapping[K, Entitlement]
) -> dict[K, Receipt]:
    """What a payment on one installment (its principal, interest and late-fee parts) pays
    each investment."""
    principal_parts = split_by_what_is_owed(
        principal, {k: s.agreed.principal - s.received_principal for k, s in standing.items()}
    )
    interest_parts = split_by_what_is_owed(
        interest, {k: s.agreed.interest - s.received_interest for k, s in standing.items()}
    )
    fee_parts = split_pro_rata(fee, {k: s.agreed.total for k, s in standing.items()})
    return {k: Receipt(principal_parts[k], interest_parts[k], fee_parts[k]) for k in standing}
