"""Programmed purchases (plans), sellers, and award events (README "Financing modalities")."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.client import WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from api import workflow_calls
from api.deps import (
    BorrowerUser,
    CurrentUser,
    OperatorOrCompliance,
    OperatorUser,
    SessionDep,
    SettingsDep,
    TemporalDep,
    in_db,
)
from api.idempotency import IdempotencyGuard
from api.routers.users import create_user
from api.schemas.plans import (
    AwardEventIn,
    AwardEventOut,
    BidIn,
    BidOut,
    ContributionOut,
    PlanCancelIn,
    PlanCancelled,
    PlanCreate,
    PlanCreated,
    PlanOut,
    PlanRecordOut,
    PlanTrailOut,
    SellerCreate,
    SellerOut,
)
from api.workflow_calls import execute_loan_update
from core.errors import Conflict, InvalidRequest, NotFound, ServiceUnavailable
from core.pseudonyms import pseudonym
from core.settings import Settings
from domain.calendar import day_of
from models.plan_workflow import AwardEventInput, CancelPlanRequest, CancelPlanResult
from models.plans import AwardEvent, PurchasePlan, Seller
from models.products import LoanProduct
from models.users import Role, User
from outbox.delivery import deliver, start_plan_payload
from outbox.messages import enqueue, undelivered_ids
from plans.award_events import check_period, place_bid
from plans.money import plan_contributions
from plans.requests import PlanAsk, create_plan, plan_workflow_input
from plans.trail import plan_records, verify_plan_chain
from workflows.award_event import AwardEventWorkflow, award_event_workflow_id
from workflows.purchase_plan import PurchasePlanWorkflow

router = APIRouter(prefix="/v1", tags=["plans"])

STAFF = (Role.operator.value, Role.compliance.value)


def _readable_plan(session: Session, plan_id: uuid.UUID, user: User) -> PurchasePlan:
    plan = session.get(PurchasePlan, plan_id)
    if plan is None or (user.role not in STAFF and plan.borrower_id != user.id):
        raise NotFound(f"no plan {plan_id}")
    return plan


def _plan_out(session: Session, plan: PurchasePlan, with_contributions: bool = True) -> PlanOut:
    product = session.get_one(LoanProduct, plan.product_id)
    return PlanOut(
        id=plan.id,
        product=product.code,
        product_version=product.version,
        award_rule=product.award_rule or "",
        status=plan.status,  # type: ignore[arg-type]
        status_reason=plan.status_reason,
        asset_kind=plan.asset_kind,
        asset_description=plan.asset_description,
        asset_price=plan.asset_price,
        seller_id=plan.seller_id,
        monthly_contribution=plan.monthly_contribution,
        contribution_months=plan.contribution_months,
        loan_term_months=plan.loan_term_months,
        contributed=plan.contributed,
        late_fees_paid=plan.late_fees_paid,
        refunded=plan.refunded,
        award_loan_id=plan.award_loan_id,
        award_event_id=plan.award_event_id,
        created_at=plan.created_at,
        closed_at=plan.closed_at,
        contributions=[ContributionOut.model_validate(c) for c in plan_contributions(session, plan.id)]
        if with_contributions
        else [],
    )


@router.post("/plans", status_code=status.HTTP_201_CREATED, response_model=PlanCreated)
async def create(
    body: PlanCreate, user: BorrowerUser, request: Request, temporal: TemporalDep, idempotency_key: IdempotencyGuard
) -> PlanCreated:
    """A programmed purchase: monthly contributions from the wallet toward the asset until the
    product's rule awards it; then the rest of the price is an award credit paid to the seller.
    Written with the order to start its workflow (the outbox), as a loan request is."""
    settings = request.app.state.settings

    def prepare(session: Session) -> tuple[uuid.UUID, str, str, list[int]]:
        plan, created = create_plan(
            session,
            user.id,
            PlanAsk(
                product_code=body.product,
                asset_kind=body.asset.kind,
                asset_description=body.asset.description,
                asset_price=body.asset.price,
                seller_id=body.asset.seller_id,
                monthly_contribution=body.monthly_contribution,
                contribution_months=body.contribution_months,
                loan_term_months=body.loan_term_months,
            ),
            simulation_id=body.simulation_id,
            client_key=idempotency_key,
        )
        if created:
            payload = start_plan_payload(
                plan_workflow_input(session, plan, settings.LOAN_TIME_SCALE, settings.PLATFORM_TIME_ZONE),
                settings.TASK_QUEUE,
            )
            message_ids = [enqueue(session, "start_plan_workflow", plan.workflow_id, payload)]
        else:
            message_ids = undelivered_ids(session, plan.workflow_id)
        return plan.id, plan.workflow_id, plan.status, message_ids

    plan_id, workflow_id, plan_status, message_ids = await in_db(request, prepare)
    if message_ids:
        await deliver(temporal.get, request.app.state.sessionmaker, ids=message_ids)
    return PlanCreated(id=plan_id, status=plan_status, workflow_id=workflow_id)


@router.get("/plans", response_model=list[PlanOut])
def list_plans(
    user: CurrentUser,
    session: SessionDep,
    plan_status: Annotated[str | None, Query(alias="status", pattern="^(saving|awarded|cancelled)$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> list[PlanOut]:
    """Borrowers: their plans. Operators and compliance: all. Others: none."""
    if user.role not in STAFF and user.role != Role.borrower.value:
        return []
    query = select(PurchasePlan)
    if user.role not in STAFF:
        query = query.where(PurchasePlan.borrower_id == user.id)
    if plan_status:
        query = query.where(PurchasePlan.status == plan_status)
    plans = session.scalars(query.order_by(PurchasePlan.created_at.desc(), PurchasePlan.id).limit(limit).offset(offset))
    return [_plan_out(session, plan, with_contributions=False) for plan in plans]


@router.get("/plans/{plan_id}", response_model=PlanOut)
def get_plan(plan_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> PlanOut:
    return _plan_out(session, _readable_plan(session, plan_id, user))


@router.get("/plans/{plan_id}/trail", response_model=PlanTrailOut)
def plan_trail(plan_id: uuid.UUID, user: CurrentUser, session: SessionDep, settings: SettingsDep) -> PlanTrailOut:
    """The plan's trail, step by step, with its hash chain checked: contributions, lateness,
    award events (entries, seed, outcome), the award or the cancellation."""
    plan = _readable_plan(session, plan_id, user)
    records = plan_records(session, plan.id)
    shown = [PlanRecordOut.model_validate(r) for r in records]
    if user.role not in STAFF:
        shown = [_others_masked(r, plan.id, settings) for r in shown]
    return PlanTrailOut(plan_id=plan.id, intact=verify_plan_chain(records).intact, records=shown)


def current_month(time_zone: str) -> str:
    return f"{day_of(datetime.now(UTC), time_zone):%Y-%m}"


def _others_masked(record: PlanRecordOut, plan_id: uuid.UUID, settings: Settings) -> PlanRecordOut:
    """A borrower reads an award event's other entries by a pseudonym, without what their
    wallets held (need to know); staff read them whole and decide the event again from them."""
    if record.action != "plan.award_event":
        return record
    details = dict(record.details)
    entries = []
    for entry in details.get("entries", []):
        if entry.get("plan_id") != str(plan_id):
            entry = {
                "plan_id": pseudonym("entrant", uuid.UUID(entry["plan_id"]), settings),
                "price": entry.get("price"),
                "bid": entry.get("bid"),
            }
        entries.append(entry)
    details["entries"] = entries
    if details.get("winner_plan_id") not in (None, str(plan_id)):
        details["winner_plan_id"] = "another plan"
    return record.model_copy(update={"details": details})


@router.post("/plans/{plan_id}/cancel", response_model=PlanCancelled)
async def cancel_plan(
    plan_id: uuid.UUID,
    request: Request,
    user: BorrowerUser,
    temporal: TemporalDep,
    idempotency_key: IdempotencyGuard,
    body: PlanCancelIn | None = None,
) -> PlanCancelled:
    """The plan ends; its contributions come back per the product's rule (the rest is the
    platform's cancellation fee). 409 once awarded or cancelled."""

    def find(session: Session) -> str:
        return _readable_plan(session, plan_id, user).workflow_id

    workflow_id = await in_db(request, find)
    client = await temporal.get()
    result: CancelPlanResult = await execute_loan_update(
        client,
        workflow_id,
        PurchasePlanWorkflow.cancel,  # type: ignore[arg-type]
        CancelPlanRequest(actor_id=user.id, reason=body.reason if body else "cancelled by the borrower"),
        update_id=f"cancel-{plan_id}-{idempotency_key}" if idempotency_key else f"cancel-{plan_id}-{uuid.uuid4()}",
        resendable=idempotency_key is not None,
        answer_from_ended=True,
    )
    return PlanCancelled(refunded=result.refunded, cancellation_fee=result.cancellation_fee)


@router.post("/plans/{plan_id}/bids", status_code=status.HTTP_201_CREATED, response_model=BidOut)
def bid(plan_id: uuid.UUID, body: BidIn, user: BorrowerUser, session: SessionDep, settings: SettingsDep) -> BidOut:
    """A bid for a month's award event (bid products): paid into the plan only if it wins,
    from the wallet as it is at the event. Bidding again for the month replaces the bid."""
    if body.period < current_month(settings.PLATFORM_TIME_ZONE):
        raise InvalidRequest("that month is over", field="period")
    placed = place_bid(session, plan_id, user.id, body.period, body.amount)
    return BidOut(plan_id=placed.plan_id, period=placed.period, amount=placed.amount)


@router.get("/sellers", response_model=list[SellerOut])
def sellers(user: CurrentUser, session: SessionDep) -> list[SellerOut]:
    """The registered sellers an award credit or a plan may name."""
    rows = session.execute(
        select(Seller.user_id, Seller.legal_name)
        .join(User, User.id == Seller.user_id)
        .where(User.is_active)
        .order_by(Seller.legal_name)
    ).all()
    return [SellerOut(id=row.user_id, legal_name=row.legal_name) for row in rows]


@router.post("/operator/sellers", status_code=status.HTTP_201_CREATED, response_model=SellerOut, tags=["operator"])
def create_seller(body: SellerCreate, operator: OperatorUser, session: SessionDep) -> SellerOut:
    """A seller (a dealer) is registered by an operator, with its own wallet: award credits
    pay it there, and it withdraws like any wallet owner."""
    user = create_user(session, str(body.email), body.password, Role.seller.value)
    session.add(Seller(user_id=user.id, legal_name=body.legal_name))
    session.flush()
    return SellerOut(id=user.id, legal_name=body.legal_name)


def _event_out(event: AwardEvent) -> AwardEventOut:
    return AwardEventOut(
        id=event.id,
        product=event.product_code,
        period=event.period,
        rule=event.rule,
        seed=event.seed,
        entries=event.entries,
        winner_plan_id=event.winner_plan_id,
        winning_bid=event.winning_bid,
        created_at=event.created_at,
    )


def _held_event(session: Session, product: str, period: str) -> AwardEvent | None:
    return session.scalars(
        select(AwardEvent).where(AwardEvent.product_code == product, AwardEvent.period == period)
    ).first()


@router.post("/operator/award-events", response_model=AwardEventOut, tags=["operator"])
async def hold_award_event(
    body: AwardEventIn, operator: OperatorUser, request: Request, temporal: TemporalDep
) -> AwardEventOut:
    """Holds a product's award event for a month (draw or bid), once: asking again answers
    with the event already held. The winner's plan is awarded by its workflow."""
    check_period(body.period)
    settings = request.app.state.settings

    def held_before(session: Session) -> AwardEventOut | None:
        event = _held_event(session, body.product, body.period)
        return _event_out(event) if event is not None else None

    if (answer := await in_db(request, held_before)) is not None:
        return answer  # held once: asking again (even after the month) answers with it
    this_month = current_month(settings.PLATFORM_TIME_ZONE)
    if body.period != this_month:
        # (no event held ahead or for a past month: the month's eligible plans are today's)
        raise InvalidRequest(f"an award event is held for the current month, {this_month}", field="period")

    def product_rule(session: Session) -> str | None:
        product = session.scalars(
            select(LoanProduct).where(LoanProduct.code == body.product, LoanProduct.is_current)
        ).first()
        if product is None:
            raise NotFound(f"no loan product with code {body.product!r}")
        return product.award_rule

    if await in_db(request, product_rule) not in ("draw", "bid"):
        raise Conflict(f"product {body.product!r} awards no plan by event")
    client = await temporal.get()
    try:
        handle = await client.start_workflow(
            AwardEventWorkflow.run,
            AwardEventInput(product_code=body.product, period=body.period, held_by=operator.id),
            id=award_event_workflow_id(body.product, body.period),
            task_queue=settings.TASK_QUEUE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=f"Award event {body.period} of {body.product}",
        )
        # Bounded as loan updates are (api/workflow_calls.py): with no worker, the result
        # would be awaited for as long as the worker is gone. Asking again is safe: the same
        # workflow id, and a start that finds it running waits for that one.
        await asyncio.wait_for(handle.result(), workflow_calls.BUSY_RETRY_SECONDS)
    except TimeoutError:
        raise ServiceUnavailable(
            "the award event is being held but its answer did not come back in time; ask again to learn it"
        ) from None
    except WorkflowAlreadyStartedError:
        pass  # held before: its record is the answer
    except WorkflowFailureError as error:
        cause = error.cause.cause if error.cause and error.cause.cause else error.cause
        raise Conflict(f"the award event could not be held: {cause}") from None

    def read(session: Session) -> AwardEventOut:
        event = _held_event(session, body.product, body.period)
        if event is None:
            raise Conflict("the award event did not complete; ask again")
        return _event_out(event)

    return await in_db(request, read)


@router.get("/award-events/{event_id}", response_model=AwardEventOut)
def award_event(event_id: uuid.UUID, user: OperatorOrCompliance, session: SessionDep) -> AwardEventOut:
    event = session.get(AwardEvent, event_id)
    if event is None:
        raise NotFound(f"no award event {event_id}")
    return _event_out(event)
