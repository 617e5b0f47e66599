"""The investor's dashboard: their portfolio, read whole in one call."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from api.deps import InvestorUser, SessionDep, SettingsDep
from api.schemas.portfolio import GradeBucketOut, HoldingOut, MonthDueOut, PortfolioOut, StatusBucketOut
from investing.portfolio import investor_portfolio

router = APIRouter(prefix="/v1", tags=["portfolio"])


@router.get("/investors/me/portfolio", response_model=PortfolioOut)
def my_portfolio(user: InvestorUser, session: SessionDep, settings: SettingsDep) -> PortfolioOut:
    """The investor's own holdings (released reservations left out) and their figures: totals,
    holdings by the loan's status and by grade, what running loans still owe them by month, and
    the realised annual return.

    `xirr_percent` is the XIRR (actual/365) of the investor's money as it moved: each
    investment out on the day its loan was paid out (holdings in loans not paid out yet are
    left out); every receipt in on the day the collection that settled its installment ran
    (partial payments of an installment not settled yet: the day the loan closed, or today);
    the reserve fund's cover in on the day of the default; running loans' outstanding
    principal in today at par; defaulted principal the fund did not cover counts as nothing
    (it is `losses`). Days are in the platform's time zone. Null when no rate can be told
    (nothing lent yet, nothing back yet, everything on one day, or a rate outside -99.99 % to
    100,000 %). investing/portfolio.py and domain/xirr.py say exactly why each choice."""
    portfolio = investor_portfolio(session, user.id, now=datetime.now(UTC), time_zone=settings.PLATFORM_TIME_ZONE)
    return PortfolioOut(
        currency=portfolio.currency,
        invested_total=portfolio.invested_total,
        outstanding_principal=portfolio.outstanding_principal,
        received_principal=portfolio.received_principal,
        received_interest=portfolio.received_interest,
        received_fees=portfolio.received_fees,
        losses=portfolio.losses,
        reserve_cover=portfolio.reserve_cover,
        xirr_percent=portfolio.xirr_percent,
        by_status=[
            StatusBucketOut(
                status=b.key, count=b.count, invested=b.invested, outstanding_principal=b.outstanding_principal
            )
            for b in portfolio.by_status
        ],
        by_grade=[
            GradeBucketOut(
                grade=b.key, count=b.count, invested=b.invested, outstanding_principal=b.outstanding_principal
            )
            for b in portfolio.by_grade
        ],
        holdings=[HoldingOut.model_validate(h) for h in portfolio.holdings],
        expected_cash_flow=[
            MonthDueOut(month=m.month, principal=m.principal, interest=m.interest, total=m.total)
            for m in portfolio.expected_cash_flow
        ],
    )
