"""The 259-FZ annual limit: a non-qualified individual investor may invest at most
600,000 RUB in a calendar year on the platform, manual and auto-invest together; qualified
investors have no limit.

Counted when the money is reserved for a loan, in the same database transaction, by an
upsert on (investor, year) that takes the row's lock: a second concurrent investment waits
for the first and sees its total, so two cannot both pass. A reservation released because
the loan was not funded gives its amount back to the year it was counted in.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from core.errors import AnnualLimitExceeded
from domain.money import ZERO
from models.auto_invest import InvestorYearTotal
from models.users import User

ANNUAL_LIMIT = Decimal("600000.00")
# The calendar year as the law counts it: Moscow time.
LIMIT_TIMEZONE = ZoneInfo("Europe/Moscow")


def limit_year(at: datetime | None) -> int:
    return (at or datetime.now(UTC)).astimezone(LIMIT_TIMEZONE).year


@dataclass(frozen=True)
class AnnualLimit:
    year: int
    qualified: bool
    limit: Decimal | None
    invested: Decimal
    left: Decimal | None


def annual_limit(session: Session, investor: User, year: int) -> AnnualLimit:
    invested = (
        session.scalar(
            select(InvestorYearTotal.invested).where(
                InvestorYearTotal.investor_id == investor.id, InvestorYearTotal.year == year
            )
        )
        or ZERO
    )
    if investor.is_qualified_investor:
        return AnnualLimit(year, True, None, invested, None)
    return AnnualLimit(year, False, ANNUAL_LIMIT, invested, max(ANNUAL_LIMIT - invested, ZERO))


def count_investment(session: Session, investor: User, amount: Decimal, year: int) -> int | None:
    """Adds the investment to the investor's year; refuses it past the limit. Returns the
    year it was counted in (None for a qualified investor, who is not counted)."""
    if investor.is_qualified_investor:
        return None
    invested = session.execute(
        pg_insert(InvestorYearTotal)
        .values(investor_id=investor.id, year=year, invested=amount)
        .on_conflict_do_update(
            index_elements=["investor_id", "year"], set_={"invested": InvestorYearTotal.invested + amount}
        )
        .returning(InvestorYearTotal.invested)
    ).scalar_one()
    if invested > ANNUAL_LIMIT:
        raise limit_exceeded(year, invested - amount)
    return year


def limit_exceeded(year: int, before: Decimal) -> AnnualLimitExceeded:
    """The refusal of an investment that would take the year past the limit."""
    left = max(ANNUAL_LIMIT - before, ZERO)
    return AnnualLimitExceeded(
        f"a non-qualified investor may invest at most {ANNUAL_LIMIT:,.2f} RUB a calendar year on the "
        f"platform (259-FZ); in {year} you have invested {before:,.2f}, so {left:,.2f} is left",
        year=year,
        limit=f"{ANNUAL_LIMIT:.2f}",
        invested=f"{before:.2f}",
        left=f"{left:.2f}",
    )


def give_back(session: Session, investor_id: uuid.UUID, amount: Decimal, year: int | None) -> None:
    """A released reservation no longer counts in its year."""
    if year is None:
        return
    session.execute(
        update(InvestorYearTotal)
        .where(InvestorYearTotal.investor_id == investor_id, InvestorYearTotal.year == year)
        .values(invested=InvestorYearTotal.invested - amount)
    )
