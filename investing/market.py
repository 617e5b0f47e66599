"""The secondary market's services: listing a holding, the open listings with their prices,
cancelling, and settling a trade (run by the loan's workflow, so it is serialized with the
loan's collections). The rules themselves are domain/market.py's.

A trade moves, in one database transaction: the money (the buyer pays the price and the
interest accrued since the last due date; the seller gets that less the platform's fee), the
claim (the seller's agreed parts of every unpaid installment are split, the sold part becomes
the buyer's new holding), the listing's remaining principal, and the trail's record."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from compliance.audit import append_audit
from core.errors import Conflict, InvalidRequest, NotFound
from core.settings import PLATFORM_TIME_ZONE
from documents.assignments import TradeFacts
from domain.calendar import day_of
from domain.market import (
    Refusal,
    Settlement,
    ShareRow,
    accrued_interest,
    listing_refusal,
    purchase_refusal,
    settlement,
    share_refusal,
    split_holding,
    yield_to_maturity,
)
from domain.money import ZERO
from investing.annual_limit import count_investment, limit_year
from ledger.accounts import platform_account
from ledger.postings import Leg, lock_accounts, post_transaction
from loans.common import available_account_of, loan_row
from loans.investor_shares import store_agreed_shares
from models.loan_workflow import SettleTradeInput, TradeSettled
from models.loans import Investment, InvestmentInstallment, LoanRequest, RepaymentInstallment
from models.market import MarketListing, MarketTrade
from models.products import LoanProduct
from models.users import User

# A listing closes by itself, with one of these reasons, when its loan can no longer be traded.
UNPAID = ("pending", "overdue")


def _raise(refusal: Refusal) -> None:
    raise (Conflict if refusal.kind == "not_eligible" else InvalidRequest)(refusal.reason)


@dataclass
class HoldingFacts:
    """A holding as the market sees it today."""

    investment: Investment
    loan: LoanRequest
    product: LoanProduct
    unpaid: list[RepaymentInstallment]
    rows: list[InvestmentInstallment]  # its agreed parts of the unpaid installments
    held_days: int
    time_zone: str

    @property
    def has_overdue(self) -> bool:
        return any(i.status == "overdue" for i in self.unpaid)

    @property
    def share_rows(self) -> list[ShareRow]:
        return [
            ShareRow(r.payment_num, r.principal - r.received_principal, r.interest - r.received_interest)
            for r in self.rows
        ]

    @property
    def outstanding(self) -> Decimal:
        return sum((r.principal for r in self.share_rows), ZERO)

    def period_of_next(self) -> tuple[date, date, int]:
        """The next unpaid installment's period: from the due date before it (or the
        disbursement) to its own due date."""
        upcoming = self.unpaid[0]
        earlier = [i.due_date for i in self.schedule if i.payment_num < upcoming.payment_num]
        start = max(earlier) if earlier else _disbursed_on(self.loan, self.time_zone)
        return start, upcoming.due_date, upcoming.payment_num

    schedule: list[RepaymentInstallment]


def _disbursed_on(loan: LoanRequest, time_zone: str) -> date:
    return day_of(loan.disbursed_at or loan.created_at, time_zone)


def holding_facts(
    session: Session, investment: Investment, today: date, time_zone: str = PLATFORM_TIME_ZONE
) -> HoldingFacts:
    """Reads only: the agreed parts as stored (a loan paid out before they were stored has
    them from its next collection, or from a settlement, which stores them under the lock)."""
    loan = session.get_one(LoanRequest, investment.loan_id)
    product = session.get_one(LoanProduct, loan.product_id)
    schedule = list(
        session.scalars(
            select(RepaymentInstallment)
            .where(RepaymentInstallment.loan_id == loan.id)
            .order_by(RepaymentInstallment.payment_num)
        )
    )
    unpaid = [i for i in schedule if i.status in UNPAID]
    numbers = {i.payment_num for i in unpaid}
    rows = [
        r
        for r in session.scalars(
            select(InvestmentInstallment)
            .where(InvestmentInstallment.investment_id == investment.id)
            .order_by(InvestmentInstallment.payment_num)
        )
        if r.payment_num in numbers
    ]
    acquired = investment.acquired_at or loan.disbursed_at or investment.created_at
    facts = HoldingFacts(
        investment=investment,
        loan=loan,
        product=product,
        unpaid=unpaid,
        rows=rows,
        held_days=(today - day_of(acquired, time_zone)).days,
        time_zone=time_zone,
        schedule=schedule,
    )
    return facts


def _refusal_to_list(facts: HoldingFacts, principal: Decimal, price_percent: Decimal) -> Refusal | None:
    return listing_refusal(
        loan_status=str(facts.loan.status),
        has_overdue=facts.has_overdue,
        unpaid_installments=len(facts.unpaid),
        held_days=facts.held_days,
        min_holding_days=facts.product.market_min_holding_days,
        outstanding_principal=facts.outstanding,
        principal=principal,
        min_investment=facts.product.min_investment,
        price_percent=price_percent,
        min_price_percent=facts.product.market_min_price_percent,
        max_price_percent=facts.product.market_max_price_percent,
    )


def create_listing(
    session: Session,
    seller: User,
    investment_id: uuid.UUID,
    principal: Decimal,
    price_percent: Decimal,
    client_key: str | None,
    today: date,
    time_zone: str = PLATFORM_TIME_ZONE,
) -> tuple[MarketListing, bool]:
    """Lists `principal` of the seller's holding at `price_percent`. (listing, created)."""
    if client_key:
        earlier = session.scalars(
            select(MarketListing).where(MarketListing.seller_id == seller.id, MarketListing.client_key == client_key)
        ).first()
        if earlier is not None:
            return earlier, False
    found = session.get(Investment, investment_id)
    if found is None or found.investor_id != seller.id:
        raise NotFound(f"no holding {investment_id}")
    loan_row(session, found.loan_id, lock=True)  # the lock order (ledger/postings.py): the loan first
    investment = session.get_one(Investment, investment_id, with_for_update=True)
    if investment.status != "active":
        raise Conflict(f"this holding is {investment.status}: only a holding in an active loan may be listed")
    if session.scalar(
        select(MarketListing.id).where(MarketListing.investment_id == investment.id, MarketListing.status == "open")
    ):
        raise Conflict("this holding is already listed: cancel that listing first")
    facts = holding_facts(session, investment, today, time_zone)
    if investment.sold_principal >= investment.amount or not facts.outstanding:
        raise Conflict("nothing of this holding is left to sell")
    refusal = _refusal_to_list(facts, principal, price_percent)
    if refusal is not None:
        _raise(refusal)
    listing = MarketListing(
        id=uuid.uuid4(),
        investment_id=investment.id,
        loan_id=investment.loan_id,
        seller_id=seller.id,
        principal=principal,
        remaining_principal=principal,
        price_percent=price_percent,
        status="open",
        client_key=client_key,
    )
    session.add(listing)
    session.flush()
    append_audit(
        session,
        investment.loan_id,
        f"market:listing:{listing.id}",
        "market.listed",
        actor_id=seller.id,
        actor_role="investor",
        details={
            "listing_id": str(listing.id),
            "investment_id": str(investment.id),
            "principal": f"{principal:.2f}",
            "price_percent": f"{price_percent:.2f}",
        },
        note=f"{principal:.2f} of a holding listed at {price_percent:.2f}%",
    )
    return listing, True


def cancel_listing(session: Session, seller: User, listing_id: uuid.UUID) -> MarketListing:
    found = session.get(MarketListing, listing_id)
    if found is None or found.seller_id != seller.id:
        raise NotFound(f"no listing {listing_id}")
    loan_row(session, found.loan_id, lock=True)  # the lock order: the loan first
    listing = session.get_one(MarketListing, listing_id, with_for_update=True)
    if listing.status == "cancelled":
        return listing
    if listing.status != "open":
        raise Conflict(f"the listing is {listing.status}")
    _close(session, listing, "cancelled", "cancelled by the seller", actor_id=seller.id)
    return listing


def _close(
    session: Session, listing: MarketListing, status: str, reason: str, actor_id: uuid.UUID | None = None
) -> None:
    listing.status = status
    listing.close_reason = reason
    listing.closed_at = datetime.now(UTC)
    append_audit(
        session,
        listing.loan_id,
        f"market:listing:{listing.id}:{status}",
        f"market.listing_{status}",
        actor_id=actor_id,
        actor_role="investor" if actor_id else "system",
        details={"listing_id": str(listing.id), "remaining_principal": f"{listing.remaining_principal:.2f}"},
        note=reason,
    )


def close_listings_if_untradeable(session: Session, loan_id: uuid.UUID) -> int:
    """Closes the loan's open listings once it can no longer be traded: not active (repaid,
    repaid early, defaulted), an installment overdue, or its last installment the only one
    left. Called wherever those change, in the same transaction. Returns how many closed."""
    open_listings = list(
        session.scalars(
            select(MarketListing)
            .where(MarketListing.loan_id == loan_id, MarketListing.status == "open")
            .with_for_update()
        )
    )
    if not open_listings:
        return 0
    loan = session.get_one(LoanRequest, loan_id)
    statuses = list(
        session.scalars(
            select(RepaymentInstallment.status).where(
                RepaymentInstallment.loan_id == loan_id, RepaymentInstallment.status.in_(UNPAID)
            )
        )
    )
    if loan.status != "active":
        reason = f"the loan is {loan.status}"
    elif not statuses:
        reason = "the loan is repaid"
    elif "overdue" in statuses:
        reason = "an installment of the loan is overdue"
    elif len(statuses) < 2:
        reason = "the loan is on its last installment"
    else:
        # Still tradeable: a listing its holding can no longer honour (a collection paid part
        # of what it offered, so less is owed than it offers, or selling it would leave the
        # seller under the minimum) closes; the seller may list again.
        product = session.get_one(LoanProduct, loan.product_id)
        closed = 0
        for listing in open_listings:
            owed = sum(
                (
                    r.principal - r.received_principal
                    for r in session.scalars(
                        select(InvestmentInstallment).where(
                            InvestmentInstallment.investment_id == listing.investment_id
                        )
                    )
                ),
                ZERO,
            )
            left = owed - listing.remaining_principal
            if left < 0 or 0 < left < product.min_investment:
                _close(session, listing, "closed", "a collection paid part of the holding: list it again")
                closed += 1
        return closed
    return close_listings(session, loan_id, reason, open_listings)


def close_listings(
    session: Session, loan_id: uuid.UUID, reason: str, listings: list[MarketListing] | None = None
) -> int:
    """Closes every open listing of the loan (it defaulted, it is repaid): nobody may buy it."""
    if listings is None:
        listings = list(
            session.scalars(
                select(MarketListing)
                .where(MarketListing.loan_id == loan_id, MarketListing.status == "open")
                .with_for_update()
            )
        )
    for listing in listings:
        _close(session, listing, "closed", reason)
    return len(listings)


@dataclass(frozen=True)
class ListingView:
    listing: MarketListing
    grade: str | None
    rate_annual: Decimal | None
    remaining_installments: int
    quote: Settlement
    yield_percent: Decimal | None


def quote_listing(
    session: Session, listing: MarketListing, principal: Decimal, today: date, time_zone: str = PLATFORM_TIME_ZONE
) -> tuple[Settlement, Decimal | None, HoldingFacts, list[ShareRow]]:
    """What `principal` of the listing costs today, its yield, and the parts it buys."""
    investment = session.get_one(Investment, listing.investment_id)
    facts = holding_facts(session, investment, today, time_zone)
    _, sold = split_holding(facts.share_rows, principal)
    start, end, next_num = facts.period_of_next()
    next_interest = next((r.interest for r in sold if r.payment_num == next_num), ZERO)
    if start < end:
        accrued = accrued_interest(next_interest, start, end, today)
    else:  # (a schedule whose first due date is not after the disbursement: nothing to spread)
        accrued = next_interest if today >= end else ZERO
    quote = settlement(principal, listing.price_percent, accrued, facts.product.market_fee_percent)
    due = {i.payment_num: i.due_date for i in facts.unpaid}
    flows = [(due[r.payment_num], r.principal + r.interest) for r in sold if due[r.payment_num] >= today]
    return quote, yield_to_maturity(quote.buyer_pays, today, flows), facts, sold


def open_listings(
    session: Session, today: date, time_zone: str = PLATFORM_TIME_ZONE, limit: int = 100, offset: int = 0
) -> list[ListingView]:
    views = []
    for listing in session.scalars(
        select(MarketListing)
        .where(MarketListing.status == "open")
        .order_by(MarketListing.created_at, MarketListing.id)
        .limit(limit)
        .offset(offset)
    ):
        view = listing_view(session, listing, today, time_zone)
        if view is not None:
            views.append(view)
    return views


def listing_view(
    session: Session, listing: MarketListing, today: date, time_zone: str = PLATFORM_TIME_ZONE
) -> ListingView | None:
    """An open listing priced today for all it still offers; None while its loan cannot be
    traded (closed by the loan's next event; not for sale meanwhile)."""
    facts = holding_facts(session, session.get_one(Investment, listing.investment_id), today, time_zone)
    if _refusal_to_list(facts, listing.remaining_principal, listing.price_percent) is not None:
        return None  # (any rule it no longer meets: its holding was paid in part, the loan moved on)
    quote, ytm, facts, _ = quote_listing(session, listing, listing.remaining_principal, today, time_zone)
    return ListingView(
        listing=listing,
        grade=facts.loan.risk_grade,
        rate_annual=facts.loan.rate_annual,
        remaining_installments=len(facts.unpaid),
        quote=quote,
        yield_percent=ytm,
    )


def check_purchase(session: Session, buyer: User, listing: MarketListing, principal: Decimal) -> None:
    """What the API refuses before the loan is asked: a closed listing, one's own, bad terms."""
    if listing.status != "open":
        raise Conflict(f"the listing is {listing.status}")
    if listing.seller_id == buyer.id:
        raise Conflict("this is your own listing")
    if principal > listing.remaining_principal:  # (others bought meanwhile)
        raise Conflict(f"only {listing.remaining_principal:.2f} of this listing is left")
    product = session.get_one(LoanProduct, session.get_one(LoanRequest, listing.loan_id).product_id)
    refusal = purchase_refusal(
        listed_principal=listing.remaining_principal, principal=principal, min_investment=product.min_investment
    )
    if refusal is not None:
        _raise(refusal)


def quote_purchase(
    session: Session,
    buyer: User,
    listing: MarketListing,
    principal: Decimal,
    on: date,
    time_zone: str = PLATFORM_TIME_ZONE,
) -> tuple[Settlement, HoldingFacts, list[ShareRow]]:
    """A purchase checked (the listing, the part, the loan still tradeable, the listing still
    one its holding can honour) and priced on `on`."""
    check_purchase(session, buyer, listing, principal)
    investment = session.get_one(Investment, listing.investment_id)
    facts = holding_facts(session, investment, on, time_zone)
    refusal = _refusal_to_list(facts, listing.remaining_principal, listing.price_percent)
    if refusal is not None:  # the loan or the holding moved on since it was listed: 409
        raise Conflict(refusal.reason)
    quote, _, facts, sold = quote_listing(session, listing, principal, on, time_zone)
    return quote, facts, sold


def check_buyer_limits(
    session: Session,
    buyer: User,
    facts: HoldingFacts,
    principal: Decimal,
    buyer_pays: Decimal,
    max_buyer_pays: Decimal | None,
) -> None:
    """409 when the purchase costs more than the buyer accepted, or would take the buyer past
    the product's share of the loan (checked again under the loan's lock at settlement)."""
    if max_buyer_pays is not None and buyer_pays > max_buyer_pays:
        raise Conflict(
            f"it costs {buyer_pays:.2f} today (price and accrued interest), more than the {max_buyer_pays:.2f} "
            "you accept to pay"
        )
    held = (
        session.scalar(
            select(func.sum(Investment.amount - Investment.sold_principal)).where(
                Investment.investor_id == buyer.id,
                Investment.loan_id == facts.loan.id,
                Investment.status.in_(("pending", "active")),
            )
        )
        or ZERO
    )
    refusal = share_refusal(
        held=held,
        principal=principal,
        loan_amount=facts.loan.amount,
        max_share_percent=facts.product.max_investor_share_percent,
    )
    if refusal is not None:
        _raise(refusal)


def settle_trade(session: Session, input: SettleTradeInput) -> TradeSettled:
    """The trade, in the caller's transaction, under the loan's lock (run once per trade id by
    loans/exactly_once.py). Refusals are PlatformErrors (recorded for good under the key)."""
    loan = loan_row(session, input.loan_id, lock=True)
    listing = session.get(MarketListing, input.listing_id, with_for_update=True)
    if listing is None or listing.loan_id != loan.id:
        raise NotFound(f"no listing {input.listing_id} on this loan")
    buyer = session.get_one(User, input.buyer_id)
    store_agreed_shares(session, loan.id)  # (stored at disbursement; here for older loans)
    seller_investment = session.get_one(Investment, listing.investment_id, with_for_update=True)
    quote, facts, sold = quote_purchase(session, buyer, listing, input.principal, input.on, input.time_zone)
    check_buyer_limits(session, buyer, facts, input.principal, quote.buyer_pays, input.max_buyer_pays)
    seller_account = available_account_of(session, listing.seller_id)
    buyer_account = available_account_of(session, buyer.id)
    fees_account = platform_account(session, "platform_fees", loan.currency)
    # The lock order (ledger/postings.py): the loan, the accounts, then the 259-FZ year row
    # (whose year is Moscow's, as for an investment).
    lock_accounts(session, {buyer_account.id, seller_account.id, fees_account.id})
    counted_year = count_investment(session, buyer, quote.buyer_pays, limit_year(input.traded_at))
    legs = [Leg(buyer_account.id, -quote.buyer_pays), Leg(seller_account.id, quote.seller_gets)]
    if quote.fee:
        legs.append(Leg(fees_account.id, quote.fee))
    posted = post_transaction(
        session,
        key=f"market:trade:{input.trade_id}",
        kind="market_trade",
        legs=legs,
        loan_id=loan.id,
        description=f"{input.principal:.2f} of a holding bought at {listing.price_percent:.2f}%",
        details={"trade_id": str(input.trade_id), "listing_id": str(listing.id)},
    )
    # The claim moves: the seller keeps what was not sold of each unpaid installment.
    by_num = {r.payment_num: r for r in facts.rows}
    buyer_investment = Investment(
        id=uuid.uuid4(),
        investor_id=buyer.id,
        loan_id=loan.id,
        amount=input.principal,
        status="active",
        counted_year=counted_year,
        acquired_at=input.traded_at,
    )
    session.add(buyer_investment)
    session.flush()
    for part in sold:
        row = by_num[part.payment_num]
        row.principal -= part.principal
        row.interest -= part.interest
        session.add(
            InvestmentInstallment(
                investment_id=buyer_investment.id,
                payment_num=part.payment_num,
                loan_id=loan.id,
                principal=part.principal,
                interest=part.interest,
            )
        )
    seller_investment.sold_principal += input.principal
    listing.remaining_principal -= input.principal
    if listing.remaining_principal == 0:
        listing.status = "sold"
        listing.closed_at = input.traded_at
        listing.close_reason = "sold"
    trade = MarketTrade(
        id=input.trade_id,
        listing_id=listing.id,
        loan_id=loan.id,
        seller_id=listing.seller_id,
        buyer_id=buyer.id,
        seller_investment_id=seller_investment.id,
        buyer_investment_id=buyer_investment.id,
        principal=input.principal,
        price_percent=listing.price_percent,
        price=quote.price,
        accrued_interest=quote.accrued,
        fee=quote.fee,
        buyer_pays=quote.buyer_pays,
        seller_gets=quote.seller_gets,
        traded_at=input.traded_at,
        sold_parts=[
            {
                "payment_num": part.payment_num,
                "due_date": next(i.due_date for i in facts.unpaid if i.payment_num == part.payment_num).isoformat(),
                "principal": f"{part.principal:.2f}",
                "interest": f"{part.interest:.2f}",
            }
            for part in sold
        ],
    )
    session.add(trade)
    session.flush()
    append_audit(
        session,
        loan.id,
        f"market:trade:{input.trade_id}",
        "market.traded",
        actor_id=buyer.id,
        actor_role="investor",
        details={
            "trade_id": str(input.trade_id),
            "listing_id": str(listing.id),
            "seller_investment_id": str(seller_investment.id),
            "buyer_investment_id": str(buyer_investment.id),
            "principal": f"{input.principal:.2f}",
            "price": f"{quote.price:.2f}",
            "accrued_interest": f"{quote.accrued:.2f}",
            "fee": f"{quote.fee:.2f}",
            "buyer_pays": f"{quote.buyer_pays:.2f}",
            "seller_gets": f"{quote.seller_gets:.2f}",
            "ledger_transaction_id": str(posted.id),
        },
        note=f"{input.principal:.2f} of a holding sold for {quote.buyer_pays:.2f}",
    )
    return TradeSettled(
        trade_id=input.trade_id,
        listing_id=listing.id,
        buyer_investment_id=buyer_investment.id,
        principal=input.principal,
        price=quote.price,
        accrued_interest=quote.accrued,
        fee=quote.fee,
        buyer_pays=quote.buyer_pays,
        seller_gets=quote.seller_gets,
        listing_remaining=listing.remaining_principal,
    )


def trade_facts(session: Session, trade_id: uuid.UUID) -> TradeFacts:
    """A settled trade as its assignment agreement states it: the part assigned is the
    buyer's holding's agreed parts of the installments unpaid at the trade."""
    trade = session.get(MarketTrade, trade_id)
    if trade is None:
        raise NotFound(f"no trade {trade_id}")
    loan = session.get_one(LoanRequest, trade.loan_id)
    return TradeFacts(
        trade_id=trade.id,
        loan_id=loan.id,
        seller_id=trade.seller_id,
        buyer_id=trade.buyer_id,
        principal=trade.principal,
        price_percent=trade.price_percent,
        price=trade.price,
        accrued_interest=trade.accrued_interest,
        fee=trade.fee,
        buyer_pays=trade.buyer_pays,
        seller_gets=trade.seller_gets,
        traded_at=trade.traded_at,
        currency=loan.currency,
        loan_rate_annual=loan.rate_annual or ZERO,
        remaining_installments=[
            {
                "payment_num": part["payment_num"],
                "due_date": part["due_date"],
                "principal": Decimal(part["principal"]),
                "interest": Decimal(part["interest"]),
            }
            for part in trade.sold_parts
        ],
    )
