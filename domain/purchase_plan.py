"""The rules of a programmed purchase (README "Financing modalities"), pure and exact.

- Contributions: one a month, the plan's chosen amount, due on the plan's monthly
  anniversaries (the start date plus k calendar months, as every schedule counts them).
- Lateness: as an installment's (domain/fees.py): a contribution unpaid on its due date is
  overdue; after the product's grace days it accrues the product's late fee a day on the
  contribution; unpaid for the product's default days, the plan is cancelled for non-payment.
- The award, by the product's rule:
  * share_reached: when the contributions reach `award_share_percent` of the asset's price;
  * draw / bid: at the monthly award event, among the plans eligible (saving, nothing
    overdue, at least one contribution paid): by a draw seeded from the event's recorded facts,
    or to the highest bid (a lump sum the plan offers to pay in, as % of its asset's price;
    ties drawn the same way);
  * and always at the plan's last contribution, if no event awarded it before.
- At the award the rest of the price is lent as an award credit: the loan amount L is the
  least for which L + contributions - withholding(L) covers the price, where withholding is
  the platform fee and the reserve-fund contribution a disbursement keeps (each a % of L,
  rounded half up). The seller is paid the price exactly: L from the investors and
  price - L (the down payment) from the contributions; the withholding is paid from the
  contributions; any kopek left over goes back to the borrower.
- Cancellation: `cancellation_refund_percent` of the contributions back to the borrower
  (rounded down to the kopek), the rest to the platform as its cancellation fee. Late fees
  already paid stay paid.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal

from domain.money import KOPEK, ZERO, round_money
from domain.schedule import due_date


class PlanRuleError(ValueError):
    """Terms a plan cannot have: the message says why."""


@dataclass(frozen=True)
class Contribution:
    number: int
    due_date: date
    amount: Decimal


def contribution_schedule(monthly: Decimal, months: int, start_date: date) -> list[Contribution]:
    if monthly <= 0 or monthly != monthly.quantize(KOPEK):
        raise PlanRuleError("the monthly contribution must be positive, in kopecks")
    if months < 1:
        raise PlanRuleError("a plan has at least one contribution")
    return [Contribution(k, due_date(start_date, k), monthly) for k in range(1, months + 1)]


def withholding(amount: Decimal, platform_fee_percent: Decimal, reserve_fund_percent: Decimal) -> Decimal:
    """What a disbursement of `amount` keeps: the platform fee and the reserve contribution,
    each rounded half up, as the loan workflow computes them."""
    return round_money(amount * platform_fee_percent / 100) + round_money(amount * reserve_fund_percent / 100)


@dataclass(frozen=True)
class AwardCredit:
    loan_amount: Decimal  # lent by investors, paid to the seller
    down_payment: Decimal  # price - loan_amount: from the contributions to the seller
    withholding: Decimal  # the disbursement's fee and reserve contribution, from the contributions
    change: Decimal  # what the contributions leave over: back to the borrower


def award_credit_for(
    price: Decimal, contributed: Decimal, platform_fee_percent: Decimal, reserve_fund_percent: Decimal
) -> AwardCredit:
    """The least loan L with L + contributed - withholding(L) >= price. L - withholding(L)
    never falls as L grows (the percentages together stay below 100), so the search is a
    bisection over kopecks; the change is then under a few kopecks."""
    if contributed < 0 or price <= 0:
        raise PlanRuleError("price and contributions must be positive")
    if contributed >= price:
        raise PlanRuleError("the contributions cover the price: nothing is left to lend")

    def covers(loan: Decimal) -> bool:
        return loan + contributed - withholding(loan, platform_fee_percent, reserve_fund_percent) >= price

    low, high = price - contributed, price
    while not covers(high):  # (only with withholding near 100%, refused by the product's rules)
        high *= 2
    if covers(low):
        high = low
    while high - low > KOPEK:
        middle = ((low + high) / 2).quantize(KOPEK, rounding=ROUND_DOWN)
        low, high = (low, middle) if covers(middle) else (middle, high)
    loan = high
    held = withholding(loan, platform_fee_percent, reserve_fund_percent)
    down = price - loan
    change = contributed - down - held
    if down < 0 or change < 0:
        raise PlanRuleError("the contributions cannot pay the disbursement's withholding")
    return AwardCredit(loan_amount=loan, down_payment=down, withholding=held, change=change)


def share_reached(contributed: Decimal, price: Decimal, share_percent: Decimal) -> bool:
    return contributed * 100 >= price * share_percent


def contributions_to_share(price: Decimal, monthly: Decimal, share_percent: Decimal) -> int:
    """How many contributions reach the share of the price."""
    return int((price * share_percent / 100 / monthly).to_integral_value(ROUND_CEILING))


def cancellation_refund(contributed: Decimal, refund_percent: Decimal) -> tuple[Decimal, Decimal]:
    """(back to the borrower, the platform's cancellation fee): the refund rounded down, so
    the two add up to the contributions exactly."""
    refund = (contributed * refund_percent / 100).quantize(KOPEK, rounding=ROUND_DOWN)
    return refund, contributed - refund


# -- the award event ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AwardEntry:
    plan_id: str
    price: Decimal
    bid: Decimal = ZERO  # bid events: the lump sum offered (0: no bid)

    def as_record(self) -> dict[str, str]:
        return {"plan_id": self.plan_id, "price": f"{self.price:.2f}", "bid": f"{self.bid:.2f}"}

    @staticmethod
    def from_record(record: dict[str, str]) -> AwardEntry:
        return AwardEntry(record["plan_id"], Decimal(record["price"]), Decimal(record["bid"]))


def event_seed(product_code: str, period: str, entries: Sequence[AwardEntry]) -> str:
    """The draw's seed: a hash of the event's recorded facts (the product, the month, every
    entry in plan order). Anyone with the trail computes it again; nobody can choose it
    without changing an entry."""
    facts = {
        "product": product_code,
        "period": period,
        "entries": [e.as_record() for e in sorted(entries, key=lambda e: e.plan_id)],
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def bid_share(entry: AwardEntry) -> Decimal:
    """A bid weighed as a share of the entry's price: a bid of 10% on a tractor beats 9% on a
    truck whatever the roubles."""
    return entry.bid / entry.price


def decide_award(rule: str, seed: str, entries: Sequence[AwardEntry]) -> AwardEntry | None:
    """The winner: by draw, one entry picked with a generator seeded by `seed` over the
    entries in plan order; by bid, the highest bid share (entries without a bid do not win a
    bid event), ties drawn the same way. None: nobody to award."""
    ordered = sorted(entries, key=lambda e: e.plan_id)
    if rule == "bid":
        bidding = [e for e in ordered if e.bid > 0]
        if not bidding:
            return None
        best = max(bid_share(e) for e in bidding)
        ordered = [e for e in bidding if bid_share(e) == best]
    elif rule != "draw":
        raise PlanRuleError(f"no award event for rule {rule!r}")
    if not ordered:
        return None
    # random.Random with a str seed is stable across runs and Python versions (it hashes the
    # string with SHA-512): the same seed and entries always give the same winner.
    return ordered[random.Random(seed).randrange(len(ordered))]
