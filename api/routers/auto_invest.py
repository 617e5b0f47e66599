"""Auto-invest for investors: the rule, what the runs gave them and why, and the 259-FZ
annual limit (how much of the year's limit is left)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from api.deps import InvestorUser, SessionDep
from api.schemas.auto_invest import AllocationOut, AnnualLimitOut, AutoInvestRuleIn, AutoInvestRuleOut
from investing.annual_limit import annual_limit, limit_year
from investing.auto_invest import get_rule, put_rule
from models.auto_invest import AutoInvestAllocation, AutoInvestRuleRow

router = APIRouter(prefix="/v1", tags=["auto-invest"])


@router.put("/auto-invest/rule", response_model=AutoInvestRuleOut)
def set_rule(body: AutoInvestRuleIn, user: InvestorUser, session: SessionDep) -> AutoInvestRuleRow:
    """Sets (creates or replaces) the investor's rule. The next run, and every loan entering
    funding, uses it."""
    return put_rule(session, user.id, body.model_dump())


@router.get("/auto-invest/rule", response_model=AutoInvestRuleOut)
def read_rule(user: InvestorUser, session: SessionDep) -> AutoInvestRuleRow:
    return get_rule(session, user.id)


@router.get("/auto-invest/allocations", response_model=list[AllocationOut])
def my_allocations(
    user: InvestorUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> list[AutoInvestAllocation]:
    """What auto-invest runs gave this investor, newest first, with why."""
    return list(
        session.scalars(
            select(AutoInvestAllocation)
            .where(AutoInvestAllocation.investor_id == user.id)
            .order_by(AutoInvestAllocation.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )


@router.get("/investors/me/annual-limit", response_model=AnnualLimitOut)
def my_annual_limit(user: InvestorUser, session: SessionDep) -> AnnualLimitOut:
    """259-FZ: a non-qualified investor may invest at most 600,000 RUB a calendar year on the
    platform, manual and auto-invest together. How much of this year's limit is left."""
    return AnnualLimitOut(**asdict(annual_limit(session, user, limit_year(None))))
