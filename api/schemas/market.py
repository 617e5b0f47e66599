"""The secondary market's requests and answers."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field

from api.schemas.base import Amount, Money, Rate, ResponseModel, StrictModel
from models.numbers import AsciiDecimal


class ListingIn(StrictModel):
    investment_id: uuid.UUID
    principal: Amount = Field(description="of the holding's outstanding principal: all of it, or a part")
    price_percent: AsciiDecimal = Field(
        gt=0, le=1000, max_digits=7, decimal_places=2, description="the price in % of the principal: 98.50"
    )


class ListingOut(ResponseModel):
    id: uuid.UUID
    loan_id: uuid.UUID
    investment_id: uuid.UUID | None = Field(description="the seller's holding (null unless you are the seller)")
    status: str
    principal: Money = Field(description="what was listed")
    remaining_principal: Money = Field(description="the outstanding principal still offered")
    price_percent: Decimal
    close_reason: str | None
    created_at: datetime
    closed_at: datetime | None = None
    mine: bool = Field(description="whether you listed it")


class MarketListingOut(ListingOut):
    """An open listing as buyers see it, priced today for all that is still offered."""

    risk_grade: str | None
    rate_annual: Rate | None
    remaining_installments: int = Field(description="the loan's installments still to be paid")
    price: Money = Field(description="remaining_principal at price_percent")
    accrued_interest: Money = Field(description="interest accrued since the last due date, paid to the seller")
    buyer_pays: Money
    yield_to_maturity_percent: Decimal | None = Field(description="the buyer's annual yield at this price, in %")


class PurchaseIn(StrictModel):
    principal: Amount | None = Field(default=None, description="a part of the listing; all of it when left out")
    max_buyer_pays: Amount | None = Field(
        default=None,
        description="the most you accept to pay (price + accrued interest); 409 if it costs more at settlement",
    )


class TradeOut(ResponseModel):
    id: uuid.UUID
    listing_id: uuid.UUID
    loan_id: uuid.UUID
    investment_id: uuid.UUID = Field(description="your new holding")
    principal: Money
    price: Money
    accrued_interest: Money
    fee: Money = Field(description="the platform's fee, paid by the seller")
    buyer_pays: Money
    listing_remaining: Money


class MyListingOut(ListingOut):
    """One of your listings. An open one is priced today, as buyers see it, while it is for
    sale (its loan can still be traded and its holding still honours it)."""

    for_sale_today: bool = Field(description="an open listing buyers can buy today")
    price: Money | None = None
    accrued_interest: Money | None = None
    buyer_pays: Money | None = None


class MyTradeOut(ResponseModel):
    """A trade of yours, bought or sold, as your statement shows it."""

    id: uuid.UUID
    side: Literal["bought", "sold"]
    listing_id: uuid.UUID
    loan_id: uuid.UUID
    investment_id: uuid.UUID = Field(description="your holding: the one bought, or the one sold from")
    principal: Money
    price_percent: Decimal
    price: Money
    accrued_interest: Money
    fee: Money = Field(description="the platform's fee, paid by the seller")
    buyer_pays: Money
    seller_gets: Money
    traded_at: datetime
