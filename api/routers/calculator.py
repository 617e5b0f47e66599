"""The financing calculator (public) and saved simulations (the borrower's own)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from fastapi import APIRouter, status
from sqlalchemy.orm import Session

from api.deps import BorrowerUser, SessionDep
from api.request_limits import AnonymousPostLimit
from api.schemas.calculator import CalculatorIn, CalculatorOut, InstallmentOut, SimulationIn, SimulationOut
from core.errors import InvalidRequest, NotFound
from domain.schedule import Schedule, ScheduleError, build_schedule
from models.products import LoanProduct
from models.simulations import Simulation
from products.service import check_request_fits, current_product

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
    )


def _schedule(amount, rate, term, start, method, interest_only) -> Schedule:
    try:
        return build_schedule(amount, rate, term, start, method, interest_only)
    except ScheduleError as exc:
        raise InvalidRequest(str(exc)) from None


@router.post("/calculator", response_model=CalculatorOut, dependencies=[AnonymousPostLimit])
def calculate(body: CalculatorIn, session: SessionDep) -> CalculatorOut:
    """The exact schedule for an amount, rate and term: what the borrower would commit to."""
    if body.product:
        check_request_fits(current_product(session, body.product), body.amount, body.term_months)
    schedule = _schedule(
        body.amount,
        body.rate_annual,
        body.term_months,
        body.start_date or today(),
        body.method,
        body.interest_only_months,
    )
    return schedule_out(schedule)


def _simulation_out(simulation: Simulation, product: LoanProduct) -> SimulationOut:
    return SimulationOut(
        id=simulation.id,
        product=product.code,
        product_version=product.version,
        risk_grade=simulation.risk_grade,
        created_at=simulation.created_at,
        start_date=simulation.start_date,
        result=CalculatorOut.model_validate(simulation.result),
    )


@router.post("/simulations", status_code=status.HTTP_201_CREATED, response_model=SimulationOut)
def create_simulation(body: SimulationIn, user: BorrowerUser, session: SessionDep) -> SimulationOut:
    """Prices a loan of a product and keeps the result; a loan can be asked from it."""
    product = current_product(session, body.product)
    check_request_fits(product, body.amount, body.term_months)
    grade = body.risk_grade
    rate = product.rate_for_grade(grade) if grade else max(product.rate_for_grade(g) for g in product.rates_by_grade)
    start = body.start_date or today()
    schedule = _schedule(
        body.amount, rate, body.term_months, start, product.amortization_method, product.interest_only_months
    )
    result = schedule_out(schedule)
    simulation = Simulation(
        id=uuid.uuid4(),
        owner_id=user.id,
        product_id=product.id,
        risk_grade=grade,
        amount=body.amount,
        rate_annual=rate,
        term_months=body.term_months,
        method=product.amortization_method,
        interest_only_months=product.interest_only_months,
        start_date=start,
        result=result.model_dump(mode="json"),
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
