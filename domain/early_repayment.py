"""The early-repayment quote: what the borrower pays to end the loan today.

- every installment already due: all of it (late fees accrued so far included);
- the installment running today: its principal, and the interest accrued from the last due
  date (or the payout) to today, actual/365 on the principal still outstanding, at most the
  installment's own interest;
- every later installment: its principal only (the interest of months not begun is forgiven).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from domain.money import ZERO, round_money
from models.loan_workflow import AmountsDue, InstallmentState


def quote_early_repayment(
    installments: Sequence[InstallmentState], today: date, disbursed_on: date, rate_annual: Decimal
) -> list[AmountsDue]:
    unsettled = [i for i in installments if not i.settled]
    balance = sum((i.principal_due for i in unsettled if i.due_date > today), ZERO)
    items: list[AmountsDue] = []
    period_start = disbursed_on
    current_done = False
    for item in installments:
        if item.settled:
            period_start = item.due_date
            continue
        if item.due_date <= today:
            items.append(item.outstanding())
            period_start = item.due_date
        elif not current_done:
            days = (today - period_start).days
            accrued = min(round_money(balance * rate_annual / 100 * days / 365), item.interest_due)
            items.append(
                AmountsDue(payment_num=item.payment_num, fee=ZERO, interest=accrued, principal=item.principal_due)
            )
            current_done = True
        else:
            items.append(
                AmountsDue(payment_num=item.payment_num, fee=ZERO, interest=ZERO, principal=item.principal_due)
            )
    return items
