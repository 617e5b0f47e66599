"""The financing calculator (public) and saved simulations (the borrower's own)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

from fastapi import APIRouter, status
from sqlalchemy.orm import Session

from api.deps import BorrowerUser, SessionDep
from api.request_limits import AnonymousPostLimit
from api.schemas.calculator import (
    CalculatorIn,
    CalculatorOut,
    ContributionPlanned,
    FitIn,
    FitOut,
    InstallmentOut,
    PlanProjectionOut,
    SimulationIn,
    SimulationOut,
)
from core.errors import InvalidRequest, NotFound
from domain.schedule import Schedule, ScheduleError, build_schedule
from models.products import LoanProduct
from models.simulations import Simulation
from plans.requests import award_credit_product, check_plan_fits
from products.fitting import Fit, PlanProjection, fit_loan, fit_plan, rate_for
from products.service import check_request_fits, current_product, schedule_of

router = APIRouter(prefix="/v1", tags=["calculator"])


def today() -> date:
    return datetime.now(UTC).date()


def schedule_out(schedule: Schedule) -> CalculatorOut:
    return CalculatorOut(
        amount=schedule.amount,
        rate_annual=schedule.rate_annual,
        term_months=schedule.term_months,
        method=schedule.method,
        interest_only_months=schedule.interest_only_months,
        payment=schedule.payment,
        total_interest=schedule.total_interest,
        total_payable=schedule.total_payable,
        schedule=[
            InstallmentOut(
                payment_num=i.payment_num,
                due_date=i.due_date,
                principal=i.principal,
                interest=i.interest,
                total=i.total,
                balance_after=i.balance_after,
                interest_only=i.interest_only,
            )
            for i in schedule.installments
        ],
        paying_months=list(schedule.paying_months),
        grace_months=schedule.grace_months,
        highest_monthly_burden=schedule.highest_monthly_burden,
    )


def plan_out(plan: PlanProjection) -> PlanProjectionOut:
    return PlanProjectionOut(
        monthly_contribution=plan.monthly_contribution,
        contribution_months=plan.contribution_months,
        contributions_total=plan.monthly_contribution * plan.contribution_months,
        award_credit_amount=plan.award_credit_amount,
        down_payment=plan.down_payment,
        loan_term_months=plan.loan_term_months,
        award_credit_product=plan.award_credit_product,
        contributions=[
            ContributionPlanned(number=c.number, due_date=c.due_date, amount=c.amount) for c in plan.contributions
        ],
    )


def _schedule(body: CalculatorIn, start: date) -> Schedule:
    try:
        return build_schedule(
            body.amount,
            body.rate_annual,
            body.term_months,
            start,
            body.method,
            body.interest_only_months,
            paying_months=body.paying_months or (),
            grace_months=body.grace_months,
        )
    except ScheduleError as exc:
        raise InvalidRequest(str(exc)) from None


@router.post("/calculator", response_model=CalculatorOut, dependencies=[AnonymousPostLimit])
def calculate(body: CalculatorIn, session: SessionDep) -> CalculatorOut:
    """The exact schedule for an amount, rate and term: what the borrower would commit to."""
    if body.product:
        check_request_fits(current_product(session, body.product), body.amount, body.term_months)
    return schedule_out(_schedule(body, body.start_date or today()))


def _fit(
    session: Session,
    product: LoanProduct,
    payment: Decimal,
    start: date,
    *,
    grade: str | None,
    amount: Decimal | None,
    term_months: int | None,
    loan_term_months: int | None,
) -> Fit:
    if product.modality == "programmed_purchase":
        if loan_term_months is None:
            raise InvalidRequest(
                "a programmed purchase needs loan_term_months (its award credit's)", field="loan_term_months"
            )
        fit = fit_plan(
            product,
            award_credit_product(session, product),
            payment,
            start,
            grade=grade,
            price=amount,
            contribution_months=term_months,
            loan_term_months=loan_term_months,
        )
        check_plan_fits(session, product, fit.amount, payment, fit.term_months, loan_term_months)
        return fit
    if loan_term_months is not None:
        raise InvalidRequest("loan_term_months is for programmed purchases", field="loan_term_months")
    fit = fit_loan(product, payment, start, grade=grade, amount=amount, term_months=term_months)
    check_request_fits(product, fit.amount, fit.term_months)
    return fit


@router.post("/calculator/fit", response_model=FitOut, dependencies=[AnonymousPostLimit])
def fit(body: FitIn, session: SessionDep) -> FitOut:
    """ "I can pay X a month": the largest amount for a term, or the shortest term for an
    amount, that fits X under the product, whatever its modality, with its schedule (a
    programmed purchase: its contributions and its award credit's schedule)."""
    product = current_product(session, body.product)
    found = _fit(
        session,
        product,
        body.payment,
        body.start_date or today(),
        grade=body.risk_grade,
        amount=body.amount,
        term_months=body.term_months,
        loan_term_months=body.loan_term_months,
    )
    return FitOut(
        product=product.code,
        product_version=product.version,
        modality=product.modality,
        solved="amount" if body.amount is None else "term_months",
        payment=body.payment,
        amount=found.amount,
        term_months=found.term_months,
        schedule=schedule_out(found.schedule),
        plan=plan_out(found.plan) if found.plan else None,
    )


def _simulation_out(simulation: Simulation, product: LoanProduct) -> SimulationOut:
    result = dict(simulation.result)
    plan = result.pop("contributions", None)
    return SimulationOut(
        id=simulation.id,
        product=product.code,
        product_version=product.version,
        risk_grade=simulation.risk_grade,
        created_at=simulation.created_at,
        start_date=simulation.start_date,
        result=CalculatorOut.model_validate(result),
        plan=PlanProjectionOut.model_validate(plan) if plan else None,
    )


@router.post("/simulations", status_code=status.HTTP_201_CREATED, response_model=SimulationOut)
def create_simulation(body: SimulationIn, user: BorrowerUser, session: SessionDep) -> SimulationOut:
    """Prices a loan (or, with a payment, finds the amount or the term that fits it, any
    modality) and keeps the result; a loan (or a plan) can be asked from it."""
    product = current_product(session, body.product)
    grade = body.risk_grade
    start = body.start_date or today()
    plan: PlanProjectionOut | None = None
    if body.payment is not None:
        found = _fit(
            session,
            product,
            body.payment,
            start,
            grade=grade,
            amount=body.amount,
            term_months=body.term_months,
            loan_term_months=body.loan_term_months,
        )
        amount, term_months, rate, schedule = found.amount, found.term_months, found.rate_annual, found.schedule
        plan = plan_out(found.plan) if found.plan else None
    else:
        if product.modality == "programmed_purchase":
            raise InvalidRequest("a programmed purchase is simulated from the payment you can make", field="payment")
        assert body.amount is not None and body.term_months is not None
        amount, term_months = body.amount, body.term_months
        check_request_fits(product, amount, term_months)
        rate = rate_for(product, grade)
        try:
            schedule = schedule_of(product, amount, rate, term_months, start)
        except ScheduleError as exc:
            raise InvalidRequest(str(exc)) from None
    result = schedule_out(schedule).model_dump(mode="json")
    if plan is not None:
        result["contributions"] = plan.model_dump(mode="json")
    simulation = Simulation(
        id=uuid.uuid4(),
        owner_id=user.id,
        product_id=product.id,
        risk_grade=grade,
        amount=amount,
        rate_annual=rate,
        term_months=term_months,
        method="contributions" if plan is not None else product.amortization_method,
        interest_only_months=product.interest_only_months,
        paying_months=product.paying_months,
        grace_months=product.grace_months,
        start_date=start,
        result=result,
    )
    session.add(simulation)
    session.flush()
    session.refresh(simulation)
    return _simulation_out(simulation, product)


def owned_simulation(session: Session, simulation_id: uuid.UUID, owner_id: uuid.UUID) -> Simulation:
    simulation = session.get(Simulation, simulation_id)
    if simulation is None or simulation.owner_id != owner_id:
        raise NotFound(f"no simulation {simulation_id}")
    return simulation


@router.get("/simulations/{simulation_id}", response_model=SimulationOut)
def get_simulation(simulation_id: uuid.UUID, user: BorrowerUser, session: SessionDep) -> SimulationOut:
    simulation = owned_simulation(session, simulation_id, user.id)
    return _simulation_out(simulation, session.get_one(LoanProduct, simulation.product_id))
