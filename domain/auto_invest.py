"""Auto-invest: which investors' rules match a loan open for funding, how much each asks
for, and how a loan that draws more demand than it needs is shared fairly.

Pure rules, no I/O. The planner (scoring of matches, then allocation loan by loan) runs in
an activity; every investment it plans is then placed through the loan workflow's own
`invest` update, like a manual one: the workflow and the ledger check it again.

Fairness, when the investors ask for more than the loan still needs:
1. Each gets the pro-rata share of what is left, by what they asked, rounded down to whole
   roubles (never more than they asked).
2. A share below the product's minimum investment is dropped and the rest shared again
   among the others (the minimum is the product's rule for every investment).
3. What rounding left over (whole roubles, then the kopecks) goes one rouble at a time to
   the investors in a rotation: the order by investor id, starting at an offset that moves
   on with every run. No investor is always first.
Each allocation says, in words, why the investor got what they got.

The secondary market (a rule with `buy_on_market`): an open listing is matched like a loan
open for funding (grade, rate, the loan's amount, and its remaining installments as the
term), and its price must be at most 100 % + the rule's `max_market_premium_percent` (a
discount is always accepted); an investor's own listing never matches. What an investor asks
for is principal of the listing, limited as for a funding loan (the rule's maximum per loan
and the product's cap per investor count what the investor already holds in that loan), but
the money limits (the budget and the 259-FZ annual limit) count what the purchase costs: the
price plus the interest accrued on the part (what settlement charges and counts). A listing
wanted by more than it offers is shared by the same fair rule as a funding loan; every part
is at least the minimum investment (or all of the listing) and the listing is left with
nothing or at least the minimum investment, as a purchase must leave it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from domain.market import price_of
from domain.money import format_rate, round_money

ZERO = Decimal("0.00")
RUBLE = Decimal("1")
KOPEK = Decimal("0.01")


@dataclass(frozen=True)
class FundingLoan:
    loan_id: uuid.UUID
    amount: Decimal
    remaining: Decimal
    rate_annual: Decimal
    grade: str
    term_months: int
    min_investment: Decimal
    # The product's cap on one investor's part of a loan, in money.
    max_per_investor: Decimal


@dataclass(frozen=True)
class AutoInvestRule:
    investor_id: uuid.UUID
    max_amount_per_loan: Decimal
    min_loan_amount: Decimal
    max_loan_amount: Decimal
    allowed_grades: frozenset[str]
    min_rate: Decimal
    max_term_months: int
    max_portfolio_share_percent: Decimal | None = None
    # The secondary market: whether the rule buys listed claims, and the highest premium
    # over par it pays (2.00: a price up to 102 %; 0: never above par).
    buy_on_market: bool = False
    max_market_premium_percent: Decimal = ZERO


@dataclass
class InvestorPosition:
    """What the investor can spend and already holds, kept up to date while a run plans."""

    budget: Decimal  # what auto-invest may spend now (see the README: reinvest_returns)
    portfolio_value: Decimal  # wallet balance (reserved included) + outstanding principal
    annual_left: Decimal | None  # 259-FZ: None for qualified investors
    in_loan: dict[uuid.UUID, Decimal] = field(default_factory=dict)


def mismatch(rule: AutoInvestRule, loan: FundingLoan) -> str | None:
    """Why the rule does not match the loan, or None when it does."""
    if loan.grade not in rule.allowed_grades:
        return f"grade {loan.grade} is not among {', '.join(sorted(rule.allowed_grades))}"
    if loan.rate_annual < rule.min_rate:
        return f"rate {format_rate(loan.rate_annual)}% is below the rule's minimum {format_rate(rule.min_rate)}%"
    if loan.term_months > rule.max_term_months:
        return f"term {loan.term_months} months is above the rule's maximum {rule.max_term_months}"
    if loan.amount < rule.min_loan_amount:
        return f"loan amount {loan.amount:.2f} is below the rule's minimum {rule.min_loan_amount:.2f}"
    if loan.amount > rule.max_loan_amount:
        return f"loan amount {loan.amount:.2f} is above the rule's maximum {rule.max_loan_amount:.2f}"
    return None


def _whole(amount: Decimal) -> Decimal:
    return amount.quantize(RUBLE, rounding=ROUND_DOWN).quantize(KOPEK)


def asked(rule: AutoInvestRule, loan: FundingLoan, position: InvestorPosition) -> tuple[Decimal, str]:
    """How much the investor asks for in this loan, in whole roubles, and what limited it."""
    already = position.in_loan.get(loan.loan_id, ZERO)
    limits = [
        (rule.max_amount_per_loan - already, "the rule's maximum per loan"),
        (position.budget, "the money available to auto-invest"),
        (loan.max_per_investor - already, "the product's cap per investor"),
        (loan.remaining, "what the loan still needs"),
    ]
    if position.annual_left is not None:
        limits.append((position.annual_left, "the 259-FZ annual limit left"))
    if rule.max_portfolio_share_percent is not None:
        cap = position.portfolio_value * rule.max_portfolio_share_percent / 100
        limits.append((cap - already, f"{rule.max_portfolio_share_percent}% of the portfolio"))
    amount, why = min(limits, key=lambda item: item[0])
    amount = max(_whole(amount), ZERO) if amount != loan.remaining else amount
    return amount, why


@dataclass(frozen=True)
class Allocation:
    investor_id: uuid.UUID
    asked: Decimal
    allocated: Decimal
    reason: str


def allocate(
    loan: FundingLoan, demand: dict[uuid.UUID, Decimal], rotation: int
) -> dict[uuid.UUID, tuple[Decimal, str]]:
    """Shares what the loan still needs among the investors asking (each at least the
    minimum investment). Returns {investor: (amount, why)}; amounts sum to what was
    allocated: all of the demand when it fits, else exactly what the loan needed (as far as
    the minimum investment allows)."""
    return share(loan.remaining, loan.min_investment, demand, rotation, "the loan")


def share(
    remaining: Decimal, min_investment: Decimal, demand: dict[uuid.UUID, Decimal], rotation: int, what: str
) -> dict[uuid.UUID, tuple[Decimal, str]]:
    """The fair sharing (the module's docstring) of `remaining` of `what` (a loan, a listing)."""
    total = sum(demand.values(), ZERO)
    if total <= remaining:
        return {i: (a, f"{what} had room for everything asked") for i, a in demand.items()}
    order = sorted(demand)
    start = rotation % len(order)
    order = order[start:] + order[:start]
    active = dict(demand)
    while True:
        asked_total = sum(active.values(), ZERO)
        shares = {i: min(_whole(remaining * a / asked_total), a) for i, a in active.items()}
        too_small = {i for i, s in shares.items() if s < min_investment}
        if not too_small or len(too_small) == len(active):
            break
        for i in too_small:
            del active[i]
    result: dict[uuid.UUID, tuple[Decimal, str]] = {}
    dropped = set(demand) - set(active)
    for i in dropped:
        result[i] = (
            ZERO,
            f"the pro-rata share of what was left fell below the minimum investment {min_investment:.2f}",
        )
    if too_small and len(too_small) == len(active):  # nobody reaches the minimum: nobody invests
        for i in active:
            result[i] = (ZERO, "oversubscribed: every pro-rata share was below the minimum investment")
        return result
    left = remaining - sum(shares.values(), ZERO)
    bonus = {i: ZERO for i in active}
    rotating = [i for i in order if i in active]
    # whole roubles first, one each in the rotation, to those still short of what they asked
    while left >= RUBLE and any(shares[i] + bonus[i] + RUBLE <= active[i] for i in rotating):
        for i in rotating:
            if left < RUBLE:
                break
            if shares[i] + bonus[i] + RUBLE <= active[i]:
                bonus[i] += RUBLE
                left -= RUBLE
    # the kopecks, to the first in the rotation who has room
    if left > 0:
        for i in rotating:
            if shares[i] + bonus[i] + left <= active[i]:
                bonus[i] += left
                left = ZERO
                break
    asked_total = sum(active.values(), ZERO)
    for i in active:
        why = f"oversubscribed: {asked_total:.2f} asked for {remaining:.2f} left; pro-rata share {shares[i]:.2f}"
        if bonus[i]:
            why += f" + {bonus[i]:.2f} of the rounding remainder (rotation from position {start})"
        result[i] = (shares[i] + bonus[i], why)
    return result


@dataclass(frozen=True)
class PlannedInvestment:
    """An investment in a funding loan, or (listing_id set) a purchase of a listing's
    principal: `asked` and `amount` are then principal, `cost` what it is planned to cost."""

    loan_id: uuid.UUID
    investor_id: uuid.UUID
    asked: Decimal
    amount: Decimal
    reason: str
    listing_id: uuid.UUID | None = None
    cost: Decimal | None = None
    # The most the purchase may cost at settlement (what budgets and the annual limit were
    # charged): the loan refuses it dearer, so a plan never spends more than it was allowed.
    max_cost: Decimal | None = None


def plan(
    loans: list[FundingLoan], rules: list[AutoInvestRule], positions: dict[uuid.UUID, InvestorPosition], rotation: int
) -> list[PlannedInvestment]:
    """Loan by loan (in the order given: the caller puts the oldest funding deadline first),
    the matching rules ask, the loan is shared, and each investor's position is updated so
    the next loan sees what is left of their budget and limits. Only investors asking at
    least the minimum investment (or exactly what the loan needs) take part."""
    planned: list[PlannedInvestment] = []
    for n, loan in enumerate(loans):
        demand: dict[uuid.UUID, Decimal] = {}
        why: dict[uuid.UUID, str] = {}
        for rule in rules:
            if mismatch(rule, loan) is not None:
                continue
            position = positions[rule.investor_id]
            amount, limited_by = asked(rule, loan, position)
            if amount <= 0 or (amount < loan.min_investment and amount != loan.remaining):
                continue
            demand[rule.investor_id] = amount
            why[rule.investor_id] = limited_by
        if not demand:
            continue
        for investor_id, (amount, reason) in allocate(loan, demand, rotation + n).items():
            planned.append(
                PlannedInvestment(
                    loan.loan_id,
                    investor_id,
                    demand[investor_id],
                    amount,
                    f"asked {demand[investor_id]:.2f} (limited by {why[investor_id]}); {reason}",
                )
            )
            if amount > 0:
                position = positions[investor_id]
                position.budget -= amount
                if position.annual_left is not None:
                    position.annual_left -= amount
                position.in_loan[loan.loan_id] = position.in_loan.get(loan.loan_id, ZERO) + amount
    return planned


# -- the secondary market -------------------------------------------------------------------------
# What a part's cost may exceed its estimate by: the estimate shares the listing's accrued
# interest pro rata; settlement splits the holding's next interest by largest remainder and
# rounds again, a few kopecks apart at most (tests/test_auto_invest_market.py checks it).
COST_MARGIN = Decimal("0.05")


@dataclass(frozen=True)
class ListingOffer:
    """An open listing as the planner sees it: priced today for all it still offers."""

    listing_id: uuid.UUID
    loan_id: uuid.UUID
    seller_id: uuid.UUID
    loan_amount: Decimal
    available: Decimal  # principal still offered
    price_percent: Decimal
    accrued: Decimal  # interest accrued on all of `available` today, paid by the buyer on top
    rate_annual: Decimal
    grade: str
    remaining_installments: int
    min_investment: Decimal
    # The product's cap on one investor's part of a loan, in money.
    max_per_investor: Decimal


def listing_mismatch(rule: AutoInvestRule, offer: ListingOffer) -> str | None:
    """Why the rule does not buy the listing, or None when it does: the rule buys on the
    market, the listing is not the investor's own, the loan matches as a funding loan would
    (its remaining installments as the term), and the price is within the rule's premium."""
    if not rule.buy_on_market:
        return "the rule does not buy on the market"
    if offer.seller_id == rule.investor_id:
        return "the investor's own listing"
    why = mismatch(
        rule,
        FundingLoan(
            loan_id=offer.loan_id,
            amount=offer.loan_amount,
            remaining=offer.available,
            rate_annual=offer.rate_annual,
            grade=offer.grade,
            term_months=offer.remaining_installments,
            min_investment=offer.min_investment,
            max_per_investor=offer.max_per_investor,
        ),
    )
    if why is not None:
        return why.replace("term ", "remaining term ", 1) if why.startswith("term ") else why
    highest = 100 + rule.max_market_premium_percent
    if offer.price_percent > highest:
        return (
            f"price {offer.price_percent:.2f}% is above the rule's maximum {highest:.2f}% "
            f"(a premium of at most {rule.max_market_premium_percent:.2f}%)"
        )
    return None


def purchase_cost(offer: ListingOffer, principal: Decimal) -> Decimal:
    """What `principal` of the listing costs today, as planned: its price plus its pro-rata
    part of the accrued interest (exact for all of the listing: the quote's buyer_pays)."""
    if principal == offer.available:
        return price_of(principal, offer.price_percent) + offer.accrued
    return price_of(principal, offer.price_percent) + round_money(offer.accrued * principal / offer.available)


def cost_bound(offer: ListingOffer, principal: Decimal) -> Decimal:
    """The most the part may cost at settlement on the same day: what budgets and the annual
    limit are charged while planning, so that the plan never spends more than they allow."""
    if principal <= 0:
        return ZERO
    if principal == offer.available:
        return purchase_cost(offer, principal)
    return purchase_cost(offer, principal) + COST_MARGIN


def affordable(offer: ListingOffer, money: Decimal) -> Decimal:
    """The most principal of the listing `money` buys: all of it if it covers its cost, else
    whole roubles (zero when not even one)."""
    if money <= 0:
        return ZERO
    if cost_bound(offer, offer.available) <= money:
        return offer.available
    per_rouble = offer.price_percent / 100 + offer.accrued / offer.available
    principal = max(min(_whole((money - COST_MARGIN) / per_rouble), _whole(offer.available)), ZERO)
    while principal > 0 and cost_bound(offer, principal) > money:
        principal -= RUBLE
    while principal + RUBLE < offer.available and cost_bound(offer, principal + RUBLE) <= money:
        principal += RUBLE
    return principal


def asked_on_market(rule: AutoInvestRule, offer: ListingOffer, position: InvestorPosition) -> tuple[Decimal, str]:
    """How much principal of the listing the investor asks for (whole roubles, or all of it)
    and what limited it. Principal limits as for a funding loan; money limits by cost."""
    already = position.in_loan.get(offer.loan_id, ZERO)
    limits = [
        (rule.max_amount_per_loan - already, "the rule's maximum per loan"),
        (offer.max_per_investor - already, "the product's cap per investor"),
        (offer.available, "what the listing offers"),
    ]
    money = [(position.budget, "the money available to auto-invest")]
    if position.annual_left is not None:
        money.append((position.annual_left, "the 259-FZ annual limit left"))
    for left, what in money:  # (a limit only where it buys less than all of the listing)
        principal = affordable(offer, left)
        if principal < offer.available:
            limits.append((principal, what))
    if rule.max_portfolio_share_percent is not None:
        cap = position.portfolio_value * rule.max_portfolio_share_percent / 100
        limits.append((cap - already, f"{rule.max_portfolio_share_percent}% of the portfolio"))
    amount, why = min(limits, key=lambda item: item[0])
    amount = max(_whole(amount), ZERO) if amount != offer.available else amount
    return amount, why


def allocate_listing(
    offer: ListingOffer, demand: dict[uuid.UUID, Decimal], rotation: int
) -> dict[uuid.UUID, tuple[Decimal, str]]:
    """Shares the listing among the investors asking, by the same rule as a funding loan.
    A purchase must leave the listing empty or with at least the minimum investment: when
    sharing all of it would leave less, all but the minimum is shared instead."""
    result = share(offer.available, offer.min_investment, demand, rotation, "the listing")
    left = offer.available - sum((a for a, _ in result.values()), ZERO)
    if not 0 < left < offer.min_investment or left == offer.available:
        return result
    capacity = offer.available - offer.min_investment
    note = (
        f"; sharing all of the listing would have left {left:.2f}, below the minimum investment "
        f"{offer.min_investment:.2f}, so {max(capacity, ZERO):.2f} was shared"
    )
    if capacity < offer.min_investment:
        return {i: (ZERO, f"no part fits the listing{note}") for i in demand}
    return {
        i: (amount, why + note)
        for i, (amount, why) in share(capacity, offer.min_investment, demand, rotation, "the listing").items()
    }


def plan_market(
    offers: list[ListingOffer],
    rules: list[AutoInvestRule],
    positions: dict[uuid.UUID, InvestorPosition],
    rotation: int,
) -> list[PlannedInvestment]:
    """Listing by listing (in the order given: the caller puts the oldest first), as `plan`
    does for funding loans: the matching rules ask, the listing is shared, and each
    investor's position is charged the part's cost bound (budget, annual limit) and its
    principal (held in the loan). Only investors asking at least the minimum investment (or
    all of the listing) take part."""
    planned: list[PlannedInvestment] = []
    for n, offer in enumerate(offers):
        demand: dict[uuid.UUID, Decimal] = {}
        why: dict[uuid.UUID, str] = {}
        for rule in rules:
            if listing_mismatch(rule, offer) is not None:
                continue
            amount, limited_by = asked_on_market(rule, offer, positions[rule.investor_id])
            if amount <= 0 or (amount < offer.min_investment and amount != offer.available):
                continue
            demand[rule.investor_id] = amount
            why[rule.investor_id] = limited_by
        if not demand:
            continue
        for investor_id, (amount, reason) in allocate_listing(offer, demand, rotation + n).items():
            cost = purchase_cost(offer, amount) if amount > 0 else ZERO
            planned.append(
                PlannedInvestment(
                    offer.loan_id,
                    investor_id,
                    demand[investor_id],
                    amount,
                    f"market: asked {demand[investor_id]:.2f} of the {offer.available:.2f} listed at "
                    f"{offer.price_percent:.2f}% (limited by {why[investor_id]}); {reason}"
                    + (f"; costs about {cost:.2f} with the accrued interest" if amount > 0 else ""),
                    listing_id=offer.listing_id,
                    cost=cost,
                    max_cost=cost_bound(offer, amount) if amount > 0 else None,
                )
            )
            if amount > 0:
                position = positions[investor_id]
                charged = cost_bound(offer, amount)
                position.budget -= charged
                if position.annual_left is not None:
                    position.annual_left -= charged
                position.in_loan[offer.loan_id] = position.in_loan.get(offer.loan_id, ZERO) + amount
    return planned
