"""Loans: borrowers ask, investors invest, everyone allowed reads. Writes go to the loan's
workflow (updates answer synchronously); reads come from the read side in PostgreSQL."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import TypeAdapter
from sqlalchemy import Select, bindparam, exists, false, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session
from temporalio.service import RPCError, RPCStatusCode

from api.deps import (
    AccessClaims,
    BorrowerUser,
    CallerRead,
    CurrentUser,
    InvestorUser,
    OperatorOrCompliance,
    OperatorUser,
    SessionDep,
    SettingsDep,
    TemporalDep,
    checks_caller_in_route,
    in_db,
    live_user,
    read_user,
)
from api.idempotency import IdempotencyGuard
from api.schemas.loans import (
    DecisionIn,
    DecisionOut,
    EarlyRepaymentOut,
    InvestmentIn,
    InvestmentLineOut,
    InvestmentOut,
    LateFeesOut,
    LoanCreate,
    LoanCreated,
    LoanOut,
    LoanOverviewOut,
    LoanReserveOut,
    ScheduleRowOut,
)
from api.workflow_calls import execute_loan_update
from compliance.need_to_know import People, Reader
from core.errors import Conflict, Forbidden, NotFound
from core.temporal_client import workflow_ui_url
from domain.money import format_money, format_rate
from investing.precheck import check_investor_can_pay
from loans.award_credit import Asset
from loans.overview import loan_money
from loans.requests import create_loan_request, workflow_input
from models.loan_status import LoanStatus
from models.loan_workflow import (
    ApprovalDecision,
    EarlyRepaymentRequest,
    InvestmentRequest,
    LoanSnapshot,
)
from models.loans import Investment, LoanRequest, RepaymentInstallment, SentInvestment
from models.products import LoanProduct
from models.users import Role, User
from outbox.delivery import deliver, start_loan_payload
from outbox.messages import enqueue, undelivered_ids
from products.service import read_product_labels
from workflows.loan import LoanWorkflow

router = APIRouter(prefix="/v1", tags=["loans"])

INVESTMENT_NAMESPACE = uuid.UUID("6f1c2d0e-4a51-4f43-9a43-6d1c1e0b7a55")

RiskGrade = Literal["A", "B", "C", "D", "E"]


# What a loan's answer (LoanOut) shows, and who may read it: read as columns (loading the whole
# row as an object cost more than the query).
_LOAN_OUT_COLUMNS = (
    LoanRequest.id,
    LoanRequest.status,
    LoanRequest.amount,
    LoanRequest.currency,
    LoanRequest.funded_amount,
    LoanRequest.rate_annual,
    LoanRequest.risk_grade,
    LoanRequest.scoring_score,
    LoanRequest.term_months,
    LoanRequest.product_id,
    LoanRequest.purpose,
    LoanRequest.rejection_reason,
    LoanRequest.funding_deadline,
    LoanRequest.disbursed_at,
    LoanRequest.closed_at,
    LoanRequest.created_at,
    LoanRequest.asset_kind,
    LoanRequest.asset_description,
    LoanRequest.asset_price,
    LoanRequest.down_payment,
    LoanRequest.seller_id,
    LoanRequest.plan_id,
    LoanRequest.borrower_id,
)


def _holds_a_part(investor: Any) -> Any:
    """Whether `investor` (an id, or a bound parameter) holds a part of the loan of the row."""
    return exists().where(Investment.loan_id == LoanRequest.id, Investment.investor_id == investor).label("invested")


def _loan_view_query() -> Select[Any]:
    return select(*_LOAN_OUT_COLUMNS, _holds_a_part(bindparam("user_id"))).where(LoanRequest.id == bindparam("loan_id"))


# Built once: the caller, the loan, and whether the caller holds a part of it, in one statement.
_LOAN_VIEW = CallerRead(_loan_view_query())


def reader_sees_all(user: User, borrower_id: uuid.UUID, status: LoanStatus, invested: bool) -> bool | None:
    """The one rule of who reads a loan: None when this user may not (404, no existence leak);
    otherwise whether they see everything (the purpose). Staff and the borrower see all; an
    investor sees a loan open for funding or one they hold a part of."""
    if user.role in (Role.operator.value, Role.compliance.value) or borrower_id == user.id:
        return True
    if user.role == Role.investor.value and (invested or status == LoanStatus.funding):
        return False
    return None


def _loan_wire(loan: Any, with_purpose: bool, products: dict[uuid.UUID, tuple[str, int]]) -> dict[str, Any]:
    """A loan as LoanOut says it in JSON, as a plain dict: money and rates already as their
    strings, in LoanOut's field order. `loan`: a LoanRequest, or a row of _LOAN_OUT_COLUMNS;
    `products`: product_labels. The hot reads send it as JSON without building a LoanOut (a
    list of 20 built as models cost a third of its serialization); tests/test_loan_wire.py
    holds it to LoanOut's own JSON, byte for byte. Nothing validates the answer again on its
    way out: its values are the table's, which PostgreSQL's types and checks already hold to
    LoanOut's (a status of the enum, whole numbers, numeric(15, 2) money)."""
    code, version = products[loan.product_id]
    rate = loan.rate_annual
    return {
        "id": loan.id,
        "status": str(loan.status),
        "amount": format_money(loan.amount),
        "currency": loan.currency,
        "funded_amount": format_money(loan.funded_amount),
        "rate_annual": None if rate is None else format_rate(rate),
        "risk_grade": loan.risk_grade,
        "scoring_score": loan.scoring_score,
        "term_months": loan.term_months,
        "product": code,
        "product_version": version,
        "purpose": loan.purpose if with_purpose else None,
        "rejection_reason": loan.rejection_reason,
        "funding_deadline": loan.funding_deadline,
        "disbursed_at": loan.disbursed_at,
        "closed_at": loan.closed_at,
        "created_at": loan.created_at,
        "asset": {
            "kind": loan.asset_kind,
            "description": loan.asset_description or "",
            "price": format_money(loan.asset_price),
            "down_payment": format_money(loan.down_payment or 0),
            "seller_id": loan.seller_id,
            "plan_id": loan.plan_id,
        }
        if loan.seller_id is not None and loan.asset_kind is not None and loan.asset_price is not None
        else None,
    }


# Serializes _loan_wire's dicts, one or a list (their values: str, int, UUID, datetime, None),
# as LoanOut would.
_WIRE_JSON = TypeAdapter(Any)


def _json_answer(wire: dict[str, Any] | list[dict[str, Any]]) -> Response:
    return Response(_WIRE_JSON.dump_json(wire), media_type="application/json")


def _loan_out(loan: Any, with_purpose: bool, products: dict[uuid.UUID, tuple[str, int]]) -> LoanOut:
    """The same loan as a model (for answers that nest it)."""
    return LoanOut.model_validate(_loan_wire(loan, with_purpose, products))


def readable_loan(session: Session, loan_id: uuid.UUID, user: User) -> tuple[LoanRequest, bool]:
    """The loan if this user may read it, and whether they see everything (purpose). Others: 404.
    (One query: the loan, and whether this user holds a part of it.)"""
    found = session.execute(select(LoanRequest, _holds_a_part(user.id)).where(LoanRequest.id == loan_id)).first()
    if found is not None:
        loan, has_invested = found
        full = reader_sees_all(user, loan.borrower_id, loan.status, has_invested)
        if full is not None:
            return loan, full
    raise NotFound(f"no loan {loan_id}")


@router.post("/loans", status_code=status.HTTP_201_CREATED, response_model=LoanCreated)
async def create_loan(
    body: LoanCreate, user: BorrowerUser, request: Request, temporal: TemporalDep, idempotency_key: IdempotencyGuard
) -> LoanCreated:
    """The request and the order to start its workflow are written in one transaction (the
    outbox), then the workflow is started: at once when Temporal answers, by the worker's
    outbox round once it is back otherwise. One loan per request whatever fails in between;
    the same Idempotency-Key returns the same loan."""
    settings = request.app.state.settings

    def prepare(session: Session) -> tuple[uuid.UUID, str, str, list[int]]:
        loan, created = create_loan_request(
            session,
            user.id,
            product_code=body.product,
            amount=body.amount,
            term_months=body.term_months,
            purpose=body.purpose,
            simulation_id=body.simulation_id,
            client_key=idempotency_key,
            asset=Asset(
                kind=body.asset.kind,
                description=body.asset.description,
                price=body.asset.price,
                down_payment=Decimal(body.asset.down_payment),
                seller_id=body.asset.seller_id,
            )
            if body.asset is not None
            else None,
        )
        if created:
            payload = start_loan_payload(
                workflow_input(session, loan, settings.LOAN_TIME_SCALE, settings.PLATFORM_TIME_ZONE),
                settings.TASK_QUEUE,
            )
            message_ids = [enqueue(session, "start_loan_workflow", loan.workflow_id, payload)]
        else:  # a resend: start it now if the first request could not
            message_ids = undelivered_ids(session, loan.workflow_id)
        return loan.id, loan.workflow_id, loan.status, message_ids

    loan_id, workflow_id, loan_status, message_ids = await in_db(request, prepare)
    if message_ids:
        await deliver(temporal.get, request.app.state.sessionmaker, ids=message_ids)
    return LoanCreated(id=loan_id, status=loan_status, workflow_id=workflow_id)


@router.get("/loans", response_model=list[LoanOut])
@checks_caller_in_route
async def list_loans(
    claims: AccessClaims,
    request: Request,
    loan_status: Annotated[LoanStatus | None, Query(alias="status")] = None,
    grade: Annotated[RiskGrade | None, Query(description="risk grade, A to E")] = None,
    product: Annotated[str | None, Query(max_length=50, description="product code, e.g. standard")] = None,
    borrower: Annotated[
        str | None,
        Query(
            max_length=320,
            description="the borrower's email (exact, any case) or user id; operators and compliance only",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> Response:
    """Borrowers: their loans. Investors: loans open for investment (status=funding, the
    default) or those they invested in. Operators and compliance: all, by status. Grade and
    product narrow what the caller sees anyway; an unknown product or borrower finds nothing.
    Filtering by borrower is for operators and compliance (403 otherwise): the answer, even an
    empty one, would tell anyone else who borrows what."""
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if loan_status:
        params["status"] = loan_status
    if grade:
        params["grade"] = grade
    if product is not None:
        params["product"] = product
    borrower_by = None
    if borrower is not None:
        text = borrower.strip()
        try:
            params["borrower"], borrower_by = uuid.UUID(text), "id"
        except ValueError:
            params["borrower"], borrower_by = text.lower(), "email"  # (emails are stored lower case)
    reads = request.app.state.reads
    staff = (Role.operator.value, Role.compliance.value)
    if borrower is not None and claims.role not in staff:
        # Refused before any list is read (a live caller only: 401 comes first).
        if live_user(await read_user(reads, claims.user_id), claims).role not in staff:
            raise Forbidden("filtering by borrower is for operators and compliance")
    # Which loans depends on the role: the token's, checked against the user's own in the same
    # read; a role changed since the token was issued reads again, by the user's role.
    role = claims.role
    for _ in range(2):
        branch = _list_branch(role, loan_status)
        if branch == "nobody":  # (no loan to filter: the statement is WHERE false, its only parameters the page)
            shape: tuple[str, bool, bool, bool, str | None] = (branch, False, False, False, None)
            values = {"limit": limit, "offset": offset}
        else:
            shape = (branch, bool(loan_status), bool(grade), product is not None, borrower_by)
            mine = {"user_id": claims.user_id} if branch in ("borrower", "investor-held") else {}
            values = {**params, **mine}
        statement = _LOAN_LISTS.get(shape) or _LOAN_LISTS.setdefault(shape, _loan_list_statement(*shape))
        user, loans = await statement.read(reads, claims, values)
        if user.role == role:
            break
        role = user.role
    else:
        raise Conflict("your role changed while the list was read; send again")
    if borrower is not None and user.role not in staff:
        raise Forbidden("filtering by borrower is for operators and compliance")
    full = user.role != Role.investor.value
    products = await read_product_labels(reads, {loan.product_id for loan in loans})
    return _json_answer([_loan_wire(loan, full, products) for loan in loans])


def _list_branch(role: str, loan_status: LoanStatus | None) -> str:
    if role == Role.borrower.value:
        return "borrower"
    if role == Role.investor.value:
        return "investor-funding" if loan_status in (None, LoanStatus.funding) else "investor-held"
    if role in (Role.operator.value, Role.compliance.value):
        return "staff"
    return "nobody"  # anyone else (a seller) reads no loan here, as GET /v1/loans/{id} says 404 to them


# The list's statement for each shape of request (which filters it has), compiled once: the
# filters' values go as parameters.
_LOAN_LISTS: dict[tuple[str, bool, bool, bool, str | None], CallerRead] = {}


def _loan_list_statement(
    branch: str, by_status: bool, by_grade: bool, by_product: bool, borrower_by: str | None
) -> CallerRead:
    query = select(*_LOAN_OUT_COLUMNS)
    if branch == "borrower":
        query = query.where(LoanRequest.borrower_id == bindparam("user_id"))
    elif branch == "investor-funding":
        query = query.where(LoanRequest.status == LoanStatus.funding)
    elif branch == "investor-held":
        query = query.where(
            LoanRequest.id.in_(select(Investment.loan_id).where(Investment.investor_id == bindparam("user_id")))
        )
    elif branch == "nobody":
        query = query.where(false())
    if by_status:
        query = query.where(LoanRequest.status == bindparam("status"))
    if by_grade:
        query = query.where(LoanRequest.risk_grade == bindparam("grade"))
    if by_product:
        # every version of the product: a loan keeps the version it was made under
        query = query.where(
            LoanRequest.product_id.in_(select(LoanProduct.id).where(LoanProduct.code == bindparam("product")))
        )
    if borrower_by is not None:
        named = User.id if borrower_by == "id" else User.email
        query = query.where(LoanRequest.borrower_id.in_(select(User.id).where(named == bindparam("borrower"))))
    return CallerRead(query, order=[(LoanRequest.created_at, True), (LoanRequest.id, False)], paged=True)


@router.get("/loans/{loan_id}", response_model=LoanOut)
@checks_caller_in_route
async def get_loan(loan_id: uuid.UUID, claims: AccessClaims, request: Request) -> Response:
    reads = request.app.state.reads
    user, found = await _LOAN_VIEW.read(reads, claims, {"loan_id": loan_id, "user_id": claims.user_id})
    loan = found[0] if found else None
    full = None if loan is None else reader_sees_all(user, loan.borrower_id, loan.status, loan.invested)
    if loan is None or full is None:
        raise NotFound(f"no loan {loan_id}")
    products = await read_product_labels(reads, {loan.product_id})
    return _json_answer(_loan_wire(loan, full, products))


@router.get("/loans/{loan_id}/schedule", response_model=list[ScheduleRowOut])
async def get_schedule(loan_id: uuid.UUID, user: CurrentUser, request: Request) -> list[ScheduleRowOut]:
    def read(session: Session) -> list[ScheduleRowOut]:
        readable_loan(session, loan_id, user)
        rows = session.scalars(
            select(RepaymentInstallment)
            .where(RepaymentInstallment.loan_id == loan_id)
            .order_by(RepaymentInstallment.payment_num)
        )
        return [ScheduleRowOut.model_validate(row) for row in rows]

    return await in_db(request, read)


@router.post("/loans/{loan_id}/investments", status_code=status.HTTP_201_CREATED, response_model=InvestmentOut)
async def invest(
    loan_id: uuid.UUID,
    body: InvestmentIn,
    user: InvestorUser,
    request: Request,
    temporal: TemporalDep,
    idempotency_key: IdempotencyGuard,
) -> InvestmentOut:
    """201 when the money is reserved for the loan; 409 when the loan is not open, the
    amount is more than what is left, or the wallet lacks the money; 422 for amounts the
    product does not allow. The same Idempotency-Key replays the same investment."""
    investment_id = (
        uuid.uuid5(INVESTMENT_NAMESPACE, f"{loan_id}:{user.id}:{idempotency_key}") if idempotency_key else uuid.uuid4()
    )

    def prepare(session: Session) -> LoanRequest:
        loan, _ = readable_loan(session, loan_id, user)
        if session.get(SentInvestment, investment_id) is None:
            # Refused here, not by the loan: what the wallet and the 259-FZ limit cannot
            # cover never reaches the workflow. The reservation checks again, under the
            # wallet's lock. A resend of an investment already sent is not checked again:
            # the loan may have taken it, and only the loan's answer is the answer.
            check_investor_can_pay(session, user, body.amount)
            session.execute(
                pg_insert(SentInvestment)
                .values(investment_id=investment_id, loan_id=loan.id, investor_id=user.id)
                .on_conflict_do_nothing(index_elements=["investment_id"])
            )
        return loan

    loan = await in_db(request, prepare)
    client = await temporal.get()
    try:
        accepted = await execute_loan_update(
            client,
            loan.workflow_id,
            LoanWorkflow.invest,
            InvestmentRequest(investment_id=investment_id, investor_id=user.id, amount=body.amount, loan_id=loan_id),
            update_id=f"investment-{investment_id}",
            resendable=idempotency_key is not None,
        )
    except Conflict:
        # The loan has moved past funding: if this very investment was taken (the first
        # answer was lost), that is the answer; otherwise the refusal stands.
        taken = await in_db(request, lambda s: _taken_investment(s, investment_id, user.id, body.amount))
        if taken is None:
            raise
        return taken
    return InvestmentOut(
        id=accepted.investment_id,
        loan_id=loan_id,
        amount=accepted.amount,
        funded_amount=accepted.funded_amount,
        remaining=accepted.remaining,
    )


def _taken_investment(
    session: Session, investment_id: uuid.UUID, investor_id: uuid.UUID, amount: Decimal
) -> InvestmentOut | None:
    investment = session.get(Investment, investment_id)
    if investment is None or investment.investor_id != investor_id or investment.amount != amount:
        return None
    if investment.status == "released":  # taken, then given back: the loan was not funded
        return None
    loan = session.get_one(LoanRequest, investment.loan_id)
    return InvestmentOut(
        id=investment.id,
        loan_id=loan.id,
        amount=investment.amount,
        funded_amount=loan.funded_amount,
        remaining=loan.amount - loan.funded_amount,
    )


@router.post("/loans/{loan_id}/early-repayment", response_model=EarlyRepaymentOut)
async def early_repayment(
    loan_id: uuid.UUID, user: BorrowerUser, request: Request, temporal: TemporalDep, idempotency_key: IdempotencyGuard
) -> EarlyRepaymentOut:
    """Repays everything today: outstanding principal, interest accrued to today, anything
    overdue with its late fees. 409 if the wallet does not hold that much."""
    loan, _ = await in_db(request, lambda s: readable_loan(s, loan_id, user))
    if loan.borrower_id != user.id:
        raise NotFound(f"no loan {loan_id}")
    client = await temporal.get()
    result = await execute_loan_update(
        client,
        loan.workflow_id,
        LoanWorkflow.repay_early,
        EarlyRepaymentRequest(requested_by=user.id, loan_id=loan_id),
        update_id=f"early-repayment-{loan_id}-{idempotency_key or uuid.uuid4()}",
        resendable=idempotency_key is not None,
        answer_from_ended=True,
    )
    return EarlyRepaymentOut(**result.model_dump())


@router.post("/operator/loans/{loan_id}/decision", response_model=DecisionOut, tags=["operator"])
async def decide(
    loan_id: uuid.UUID,
    body: DecisionIn,
    operator: OperatorUser,
    request: Request,
    temporal: TemporalDep,
    idempotency_key: IdempotencyGuard,
) -> DecisionOut:
    """Approve or reject a loan awaiting review (409 if it is not)."""
    loan, _ = await in_db(request, lambda s: readable_loan(s, loan_id, operator))
    client = await temporal.get()
    result = await execute_loan_update(
        client,
        loan.workflow_id,
        LoanWorkflow.decide,
        ApprovalDecision(approve=body.approve, operator_id=operator.id, reason=body.reason, loan_id=loan_id),
        update_id=f"decision-{loan_id}",
        answer_from_ended=True,
    )
    return DecisionOut(status=result.status)


@router.get("/operator/loans/{loan_id}/overview", response_model=LoanOverviewOut, tags=["operator"])
def loan_overview(
    loan_id: uuid.UUID, user: OperatorOrCompliance, session: SessionDep, settings: SettingsDep
) -> LoanOverviewOut:
    """The loan's money in one answer for the back office, from the read side: each
    investment's receipts, outstanding principal, cover and loss; the late fees; the
    installments by status; and a link to its workflow in the Temporal UI."""
    loan, _ = readable_loan(session, loan_id, user)
    money = loan_money(session, loan.id)
    people = People(session, Reader.of(user, settings), [line.investor_id for line in money.investments])
    return LoanOverviewOut(
        loan_id=loan.id,
        workflow_id=loan.workflow_id,
        temporal_ui_url=workflow_ui_url(settings, loan.workflow_id),
        investments=[
            InvestmentLineOut(**asdict(line), investor_email=people.email(line.investor_id))
            for line in money.investments
        ],
        late_fees=LateFeesOut(
            accrued=money.late_fees_accrued, paid=money.late_fees_paid, outstanding=money.late_fees_outstanding
        ),
        reserve=LoanReserveOut(covered=money.reserve_covered, losses=money.losses),
        installments_by_status=money.installments_by_status,
    )


@router.get("/operator/loans/{loan_id}/live", response_model=LoanSnapshot, tags=["operator"])
async def live_state(loan_id: uuid.UUID, user: CurrentUser, request: Request, temporal: TemporalDep) -> LoanSnapshot:
    """The workflow's own view (a query), for operators and compliance."""
    if user.role not in (Role.operator.value, Role.compliance.value):
        raise Forbidden("operators and compliance only")
    loan, _ = await in_db(request, lambda s: readable_loan(s, loan_id, user))
    client = await temporal.get()
    try:
        return await client.get_workflow_handle(loan.workflow_id).query(LoanWorkflow.snapshot)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        # (its start waits in the outbox: Temporal was down when it was asked for)
        raise NotFound(f"loan {loan_id} has no running workflow yet") from None
