"""The secondary market: an investor sells all or part of their claim on an active loan.

The rules, for a seller, a buyer and an auditor alike:
- What may be listed (`listing_refusal`): a holding of a loan being repaid ("active"), with
  no installment overdue and at least two installments unpaid (not on its last), held at
  least the market's minimum number of days. The part offered is positive, in kopecks, no
  more than the holding's outstanding principal, and either all of it or a part that
  leaves both the buyer and the seller at least the product's minimum investment. Its price
  is a percent of that principal with at most two decimals, within the market's range.
  A refusal says whether the holding cannot be sold now (409: the state of the loan or the
  holding) or the terms asked are wrong (422: the principal or the price).
- What may be bought (`purchase_refusal`): all of a listing or a part of it, by the same
  minimum rule on both sides; and no more than keeps the buyer within the product's share of
  the loan (`share_refusal`), the cap of primary funding.
- The price (`price_of`) is principal x percent / 100, rounded half up to the kopek.
- The buyer also pays the interest the part sold has earned since the last due date (or the
  disbursement) (`accrued_interest`): the next installment's interest on that part, by
  actual days, rounded half up, never below 0 nor above that interest. The buyer then
  receives the whole of the next installment, so the seller keeps what was earned.
- What moves (`split_holding`): every unpaid installment of the holding is split between the
  seller (kept) and the buyer (sold). Principal: the sold principal split across installments
  by their principal (largest remainder, domain/allocation.py), so it adds up to exactly the
  principal sold, no installment's sold part is negative or above the installment. Interest:
  each installment's interest times the same fraction (sold principal / principal still
  owed), rounded by largest remainder from exact quotas, so each installment's sold interest
  is within a kopek of its exact share and the sold total is that fraction of the total
  interest rounded half up. Kept = row - sold, exactly, so not a kopek is made or lost.
- The money (`settlement`): the buyer pays price + accrued interest; the market's fee is a
  percent of the price (`market_fee`), rounded half up; the seller gets the rest.
  buyer_pays == seller_gets + fee, exactly.
- The buyer's yield (`yield_to_maturity`): the XIRR (actual/365, domain/xirr.py) of paying
  what the buyer pays on the day and receiving the sold part's remaining installments on
  their due dates, in percent to two decimals, as the portfolio shows its XIRR. It is an
  effective annual rate: at par on a due date it is about (1 + rate/12)^12 - 1 of the
  loan's nominal annual rate, not the nominal rate itself.

Pure functions, no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from domain.allocation import split_pro_rata
from domain.investment_rules import investor_cap
from domain.money import KOPEK, ZERO, has_at_most_two_decimals, round_money
from domain.xirr import xirr

RefusalKind = Literal["not_eligible", "bad_terms"]

PERCENT = Decimal("0.01")
ACTIVE = "active"
# The fewest unpaid installments a holding may be sold with: never on the loan's last.
MIN_UNPAID_INSTALLMENTS = 2


@dataclass(frozen=True)
class Refusal:
    """Why a listing or a purchase is refused. `not_eligible`: the state of the loan or the
    holding (409 Conflict); `bad_terms`: the principal or the price asked (422)."""

    kind: RefusalKind
    reason: str

    @property
    def http_status(self) -> int:
        return 409 if self.kind == "not_eligible" else 422


def _not_eligible(reason: str) -> Refusal:
    return Refusal("not_eligible", reason)


def _bad_terms(reason: str) -> Refusal:
    return Refusal("bad_terms", reason)


def _in_kopecks(value: Decimal) -> bool:
    return value.is_finite() and has_at_most_two_decimals(value)


def _part_refusal(*, available: Decimal, principal: Decimal, min_investment: Decimal, what: str) -> Refusal | None:
    """All of `available`, or a part of at least the minimum that leaves at least the minimum."""
    if not _in_kopecks(principal) or principal <= 0:
        return _bad_terms("the principal must be positive with at most two decimals")
    if principal > available:
        return _bad_terms(f"the principal {principal:.2f} is more than the {available:.2f} {what}")
    if principal == available:
        return None
    left = available - principal
    if principal < min_investment or left < min_investment:
        if available < 2 * min_investment:
            return _bad_terms(
                f"only all of the {available:.2f} {what} can be taken: a part must be at least "
                f"{min_investment:.2f} and leave at least {min_investment:.2f}"
            )
        return _bad_terms(
            f"take all of the {available:.2f} {what} or a part of at least {min_investment:.2f} "
            f"that leaves at least {min_investment:.2f} (at most {available - min_investment:.2f})"
        )
    return None


def listing_refusal(
    *,
    loan_status: str,
    has_overdue: bool,
    unpaid_installments: int,
    held_days: int,
    min_holding_days: int,
    outstanding_principal: Decimal,
    principal: Decimal,
    min_investment: Decimal,
    price_percent: Decimal,
    min_price_percent: Decimal,
    max_price_percent: Decimal,
) -> Refusal | None:
    """None when `principal` of a holding whose principal still owed is `outstanding_principal`
    may be listed at `price_percent`; otherwise the first rule it breaks, in this order:
    the loan is active, nothing overdue, at least two installments unpaid, held long enough
    (all `not_eligible`); then the principal and the price (`bad_terms`)."""
    if loan_status != ACTIVE:
        return _not_eligible(
            f"the loan is not active (it is {loan_status}): only a loan being repaid can be sold on the market"
        )
    if has_overdue:
        return _not_eligible("the loan has an overdue installment: it cannot be sold until it is paid")
    if unpaid_installments < MIN_UNPAID_INSTALLMENTS:
        return _not_eligible(
            f"the loan has {unpaid_installments} unpaid installment(s): a holding cannot be sold "
            f"on the loan's last installment"
        )
    if held_days < min_holding_days:
        return _not_eligible(
            f"a holding can be sold once held {min_holding_days} days; this one has been held {held_days}"
        )
    part = _part_refusal(
        available=outstanding_principal, principal=principal, min_investment=min_investment, what="still owed to you"
    )
    if part is not None:
        return part
    if not price_percent.is_finite() or not has_at_most_two_decimals(price_percent):
        return _bad_terms("the price must be a percent of the principal with at most two decimals")
    if not min_price_percent <= price_percent <= max_price_percent:
        return _bad_terms(
            f"the price must be between {min_price_percent:.2f}% and {max_price_percent:.2f}% of the principal"
        )
    return None


def purchase_refusal(*, listed_principal: Decimal, principal: Decimal, min_investment: Decimal) -> Refusal | None:
    """None when `principal` of a listing of `listed_principal` may be bought: positive, in
    kopecks, no more than listed, and all of it or at least the minimum leaving at least the
    minimum. Every refusal here is `bad_terms` (422)."""
    return _part_refusal(available=listed_principal, principal=principal, min_investment=min_investment, what="listed")


def share_refusal(
    *, held: Decimal, principal: Decimal, loan_amount: Decimal, max_share_percent: Decimal
) -> Refusal | None:
    """None when a buyer who holds `held` of the loan (what each holding was lent or bought
    for, less what it sold: as primary funding and the auto-invest planner count it) may buy
    `principal` more: the total stays within the product's share of the loan's amount, the
    same cap as primary funding (domain/investment_rules.py). A refusal is `not_eligible`."""
    cap = investor_cap(loan_amount, max_share_percent)
    if held + principal <= cap:
        return None
    percent = f"{max_share_percent.normalize():f}"
    return _not_eligible(
        f"one investor may hold at most {percent}% of this loan ({cap:.2f}); you hold {held:.2f}, "
        f"so at most {max(cap - held, ZERO):.2f} more"
    )


def price_of(principal: Decimal, price_percent: Decimal) -> Decimal:
    """What the principal sells for: principal x percent / 100, rounded half up to the kopek."""
    return round_money(principal * price_percent / 100)


def accrued_interest(next_interest: Decimal, period_start: date, period_end: date, on: date) -> Decimal:
    """The part of `next_interest` (the next installment's interest on the part sold) earned
    from `period_start` (the last due date, or the disbursement) to `on`, by actual days,
    rounded half up to the kopek: 0 on or before the start, all of it on or after the end."""
    if period_end <= period_start:
        raise ValueError("the period must end after it starts")
    if not _in_kopecks(next_interest) or next_interest < 0:
        raise ValueError("the interest must be zero or positive, in kopecks")
    if on <= period_start:
        return ZERO
    if on >= period_end:
        return next_interest
    earned = round_money(next_interest * (on - period_start).days / (period_end - period_start).days)
    return min(max(earned, ZERO), next_interest)


@dataclass(frozen=True)
class ShareRow:
    """What is still owed to a holding on one unpaid installment."""

    payment_num: int
    principal: Decimal
    interest: Decimal


def _kopecks(value: Decimal) -> int:
    return int(value / KOPEK)


def _interest_sold(rows: Sequence[ShareRow], sold: int, owed: int) -> list[Decimal]:
    """Each row's interest x sold / owed, by largest remainder from the exact quotas (integer
    kopecks, no rounding before the end): each part is the quota rounded down or up a kopek,
    and they add up to the total quota rounded half up."""
    if sold == 0:
        return [ZERO for _ in rows]
    weights = [_kopecks(row.interest) for row in rows]
    floors = [sold * w // owed for w in weights]
    total = (2 * sold * sum(weights) + owed) // (2 * owed)
    leftover = total - sum(floors)
    order = sorted(range(len(rows)), key=lambda i: (-(sold * weights[i] % owed), -weights[i], i))
    for i in order[:leftover]:
        floors[i] += 1
    return [Decimal(k) * KOPEK for k in floors]


def split_holding(rows: Sequence[ShareRow], sold_principal: Decimal) -> tuple[list[ShareRow], list[ShareRow]]:
    """(kept, sold): every row split in two, in the rows' order, with the same payment_nums.
    kept + sold == row for principal and interest, exactly; the sold principal adds up to
    `sold_principal` exactly; no part is negative or above its row. Selling all the principal
    sells every row whole and keeps rows of zeros (not an empty list)."""
    for row in rows:
        if not (_in_kopecks(row.principal) and _in_kopecks(row.interest)) or row.principal < 0 or row.interest < 0:
            raise ValueError(f"installment {row.payment_num}: amounts must be zero or positive, in kopecks")
    owed = sum((row.principal for row in rows), ZERO)
    if not _in_kopecks(sold_principal) or sold_principal < 0:
        raise ValueError("the principal sold must be zero or positive, in kopecks")
    if sold_principal > owed:
        raise ValueError(f"{sold_principal:.2f} is more than the {owed:.2f} principal still owed")
    principal_parts = split_pro_rata(sold_principal, {i: row.principal for i, row in enumerate(rows)})
    interest_parts = _interest_sold(rows, _kopecks(sold_principal), _kopecks(owed))
    kept: list[ShareRow] = []
    sold: list[ShareRow] = []
    for i, row in enumerate(rows):
        principal, interest = principal_parts[i], interest_parts[i]
        sold.append(ShareRow(row.payment_num, principal, interest))
        kept.append(ShareRow(row.payment_num, row.principal - principal, row.interest - interest))
    return kept, sold


def market_fee(price: Decimal, fee_percent: Decimal) -> Decimal:
    """The market's fee on a sale: price x percent / 100, rounded half up to the kopek."""
    return round_money(price * fee_percent / 100)


@dataclass(frozen=True)
class Settlement:
    """The money of one sale: buyer_pays = price + accrued = seller_gets + fee."""

    price: Decimal
    accrued: Decimal
    fee: Decimal
    buyer_pays: Decimal
    seller_gets: Decimal


def settlement(principal: Decimal, price_percent: Decimal, accrued: Decimal, fee_percent: Decimal) -> Settlement:
    """What the buyer pays, the market keeps and the seller gets for `principal` sold at
    `price_percent` with `accrued` interest. The fee is on the price only (a percent from 0
    to 100), so the seller never gets less than the accrued interest."""
    if not _in_kopecks(accrued) or accrued < 0:
        raise ValueError("the accrued interest must be zero or positive, in kopecks")
    if not fee_percent.is_finite() or not 0 <= fee_percent <= 100:
        raise ValueError("the fee is a percent from 0 to 100")
    price = price_of(principal, price_percent)
    fee = market_fee(price, fee_percent)
    buyer_pays = price + accrued
    return Settlement(price=price, accrued=accrued, fee=fee, buyer_pays=buyer_pays, seller_gets=buyer_pays - fee)


def yield_to_maturity(buyer_pays: Decimal, on: date, flows: Sequence[tuple[date, Decimal]]) -> Decimal | None:
    """The buyer's annual yield in percent (two decimals, half up): the XIRR (actual/365) of
    paying `buyer_pays` on `on` and receiving `flows` (the sold part's principal + interest,
    by due date, none before `on`). None when it cannot be computed: nothing paid or nothing
    received, or no rate in domain/xirr.py's range."""
    if any(day < on for day, _ in flows):
        raise ValueError("a flow falls before the purchase")
    if buyer_pays <= 0:
        return None
    rate = xirr([(on, -buyer_pays), *flows])
    if rate is None:
        return None
    return (rate * 100).quantize(PERCENT, rounding=ROUND_HALF_UP)
