"""The secondary market: an investor lists all or part of a holding, another buys it. A
purchase is settled by the loan's own workflow (the `trade` update), serialized with its
collections. Rules: domain/market.py and README "Secondary market"."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response, status
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from api.deps import InvestorUser, SessionDep, SettingsDep, TemporalDep, in_db
from api.idempotency import IdempotencyGuard
from api.schemas.market import (
    ListingIn,
    ListingOut,
    MarketListingOut,
    MyListingOut,
    MyTradeOut,
    PurchaseIn,
    TradeOut,
)
from api.workflow_calls import execute_loan_update
from core.errors import NotFound
from core.settings import Settings
from domain.calendar import day_of
from investing.market import (
    ListingView,
    cancel_listing,
    check_buyer_limits,
    create_listing,
    listing_view,
    open_listings,
    quote_purchase,
)
from investing.precheck import check_investor_can_pay
from models.loan_workflow import TradeRequest, TradeSettled
from models.loans import LoanRequest
from models.market import MarketListing, MarketTrade
from models.users import User
from workflows.loan import LoanWorkflow

router = APIRouter(prefix="/v1/market", tags=["market"])

TRADE_NAMESPACE = uuid.UUID("0b7f8f0e-2d1a-4a55-9c59-1f4a2f7c3e11")


def platform_today(settings: Settings) -> date:
    """The day it is in the platform's time zone (a loan's due dates are days there)."""
    return day_of(datetime.now(UTC), settings.PLATFORM_TIME_ZONE)


def _listing_out(listing: MarketListing, user: User) -> ListingOut:
    mine = listing.seller_id == user.id
    return ListingOut(
        id=listing.id,
        loan_id=listing.loan_id,
        investment_id=listing.investment_id if mine else None,
        status=listing.status,
        principal=listing.principal,
        remaining_principal=listing.remaining_principal,
        price_percent=listing.price_percent,
        close_reason=listing.close_reason,
        created_at=listing.created_at,
        closed_at=listing.closed_at,
        mine=mine,
    )


def _market_out(view: ListingView, user: User) -> MarketListingOut:
    return MarketListingOut(
        **_listing_out(view.listing, user).model_dump(),
        risk_grade=view.grade,
        rate_annual=view.rate_annual,
        remaining_installments=view.remaining_installments,
        price=view.quote.price,
        accrued_interest=view.quote.accrued,
        buyer_pays=view.quote.buyer_pays,
        yield_to_maturity_percent=view.yield_percent,
    )


@router.post("/listings", status_code=status.HTTP_201_CREATED, response_model=ListingOut)
def list_holding(
    body: ListingIn,
    user: InvestorUser,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: IdempotencyGuard,
) -> ListingOut:
    """201 the listing; 409 when the holding cannot be listed now (the reason says why: the
    loan not active, an installment overdue, its last installment, held too briefly, already
    listed); 422 for terms the product does not allow (the part, the price range)."""
    listing, created = create_listing(
        session,
        user,
        body.investment_id,
        body.principal,
        body.price_percent,
        idempotency_key,
        platform_today(settings),
        settings.PLATFORM_TIME_ZONE,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return _listing_out(listing, user)


@router.get("/listings", response_model=list[MarketListingOut])
def market(
    user: InvestorUser,
    session: SessionDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> list[MarketListingOut]:
    """Open listings, oldest first, each priced today for all that is still offered."""
    views = open_listings(session, platform_today(settings), settings.PLATFORM_TIME_ZONE, limit, offset)
    return [_market_out(view, user) for view in views]


@router.get("/listings/mine", response_model=list[MyListingOut])
def my_listings(
    user: InvestorUser,
    session: SessionDep,
    settings: SettingsDep,
    status_: Annotated[
        list[Literal["open", "sold", "cancelled", "closed"]] | None,
        Query(alias="status", description="one or more (repeat the parameter); all when left out"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> list[MyListingOut]:
    """Your listings in any status (or those asked), newest first: an open one priced today
    while it is for sale, a closed one with why it closed (cancelled by you, sold, or the loan
    could no longer be traded)."""
    query = select(MarketListing).where(MarketListing.seller_id == user.id)
    if status_:
        query = query.where(MarketListing.status.in_(status_))
    rows = session.scalars(
        query.order_by(MarketListing.created_at.desc(), MarketListing.id).limit(limit).offset(offset)
    ).all()
    today = platform_today(settings)
    answers = []
    for listing in rows:
        view = listing_view(session, listing, today, settings.PLATFORM_TIME_ZONE) if listing.status == "open" else None
        answers.append(
            MyListingOut(
                **_listing_out(listing, user).model_dump(),
                for_sale_today=view is not None,
                price=view.quote.price if view else None,
                accrued_interest=view.quote.accrued if view else None,
                buyer_pays=view.quote.buyer_pays if view else None,
            )
        )
    return answers


@router.get("/trades", response_model=list[MyTradeOut])
def my_trades(
    user: InvestorUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> list[MyTradeOut]:
    """Your trades, bought and sold, newest first."""
    rows = session.scalars(
        select(MarketTrade)
        .where(or_(MarketTrade.buyer_id == user.id, MarketTrade.seller_id == user.id))
        .order_by(MarketTrade.traded_at.desc(), MarketTrade.id)
        .limit(limit)
        .offset(offset)
    )
    return [
        MyTradeOut(
            id=trade.id,
            side="bought" if trade.buyer_id == user.id else "sold",
            listing_id=trade.listing_id,
            loan_id=trade.loan_id,
            investment_id=trade.buyer_investment_id if trade.buyer_id == user.id else trade.seller_investment_id,
            principal=trade.principal,
            price_percent=trade.price_percent,
            price=trade.price,
            accrued_interest=trade.accrued_interest,
            fee=trade.fee,
            buyer_pays=trade.buyer_pays,
            seller_gets=trade.seller_gets,
            traded_at=trade.traded_at,
        )
        for trade in rows
    ]


@router.delete("/listings/{listing_id}", response_model=ListingOut)
def cancel(listing_id: uuid.UUID, user: InvestorUser, session: SessionDep) -> ListingOut:
    """The seller takes the listing off the market (what was sold stays sold)."""
    return _listing_out(cancel_listing(session, user, listing_id), user)


@router.post("/listings/{listing_id}/purchase", status_code=status.HTTP_201_CREATED, response_model=TradeOut)
async def purchase(
    listing_id: uuid.UUID,
    request: Request,
    user: InvestorUser,
    temporal: TemporalDep,
    idempotency_key: IdempotencyGuard,
    body: PurchaseIn | None = None,
) -> TradeOut:
    """201 the trade. 409: the listing sold, cancelled or closed, your own, not enough money,
    past the 259-FZ annual limit (a purchase counts toward it), or the loan can no longer be
    traded (overdue, its last installment), more than `max_buyer_pays`, or past the product's
    share of the loan one investor may hold (as in primary funding), or the loan's agreements
    still being registered after AGREEMENTS_WAIT_SECONDS of waiting for them (reason
    AgreementsPending: send again shortly). 422: a part below the product's minimum. The same
    Idempotency-Key gives the same trade."""
    trade_id = (
        uuid.uuid5(TRADE_NAMESPACE, f"{listing_id}:{user.id}:{idempotency_key}") if idempotency_key else uuid.uuid4()
    )

    def prepare(session: Session) -> tuple[TradeRequest, str, TradeOut | None]:
        listing = session.get(MarketListing, listing_id)
        if listing is None:
            raise NotFound(f"no listing {listing_id}")
        loan = session.get_one(LoanRequest, listing.loan_id)
        done = session.get(MarketTrade, trade_id)
        if done is not None:  # a resend whose first answer was lost
            return (
                _trade_request(listing, user, done.principal, trade_id),
                str(loan.workflow_id),
                _trade_out(done, listing),
            )
        principal = (body.principal if body and body.principal else None) or listing.remaining_principal
        # What the wallet and the annual limit cannot cover never reaches the loan (the
        # settlement checks everything again, under the locks, on the loan's own date).
        settings = request.app.state.settings
        quote, facts, _ = quote_purchase(
            session, user, listing, principal, platform_today(settings), settings.PLATFORM_TIME_ZONE
        )
        max_buyer_pays = body.max_buyer_pays if body else None
        check_buyer_limits(session, user, facts, principal, quote.buyer_pays, max_buyer_pays)
        check_investor_can_pay(session, user, quote.buyer_pays)
        return _trade_request(listing, user, principal, trade_id, max_buyer_pays), str(loan.workflow_id), None

    trade_request, workflow_id, done = await in_db(request, prepare)
    if done is not None:
        return done
    client = await temporal.get()
    settled: TradeSettled = await execute_loan_update(
        client,
        workflow_id,
        LoanWorkflow.trade,
        trade_request,
        update_id=f"trade-{trade_id}",
        resendable=idempotency_key is not None,
    )
    return TradeOut(
        id=settled.trade_id,
        listing_id=settled.listing_id,
        loan_id=trade_request.loan_id,
        investment_id=settled.buyer_investment_id,
        principal=settled.principal,
        price=settled.price,
        accrued_interest=settled.accrued_interest,
        fee=settled.fee,
        buyer_pays=settled.buyer_pays,
        listing_remaining=settled.listing_remaining,
    )


def _trade_request(
    listing: MarketListing,
    buyer: User,
    principal: Decimal,
    trade_id: uuid.UUID,
    max_buyer_pays: Decimal | None = None,
) -> TradeRequest:
    return TradeRequest(
        trade_id=trade_id,
        listing_id=listing.id,
        buyer_id=buyer.id,
        principal=principal,
        loan_id=listing.loan_id,
        max_buyer_pays=max_buyer_pays,
    )


def _trade_out(trade: MarketTrade, listing: MarketListing) -> TradeOut:
    return TradeOut(
        id=trade.id,
        listing_id=trade.listing_id,
        loan_id=trade.loan_id,
        investment_id=trade.buyer_investment_id,
        principal=trade.principal,
        price=trade.price,
        accrued_interest=trade.accrued_interest,
        fee=trade.fee,
        buyer_pays=trade.buyer_pays,
        listing_remaining=listing.remaining_principal,
    )
