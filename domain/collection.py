"""What a collection takes from the borrower's wallet, installment by installment.

The waterfall: oldest installment first; within one, the late fee, then the interest, then
the principal. Never more than the wallet holds, never more than is owed.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from domain.money import ZERO
from models.loan_workflow import InstallmentAmounts


def total_of(items: Sequence[InstallmentAmounts]) -> Decimal:
    return sum((i.fee + i.interest + i.principal for i in items), ZERO)


def collection_waterfall(available: Decimal, owed: Sequence[InstallmentAmounts]) -> list[InstallmentAmounts]:
    """What is paid on each owed installment (in their order) from `available`."""
    budget = max(min(available, total_of(owed)), ZERO)
    paid: list[InstallmentAmounts] = []
    for item in owed:
        fee = min(budget, item.fee)
        budget -= fee
        interest = min(budget, item.interest)
        budget -= interest
        principal = min(budget, item.principal)
        budget -= principal
        paid.append(InstallmentAmounts(payment_num=item.payment_num, fee=fee, interest=interest, principal=principal))
    return paid
