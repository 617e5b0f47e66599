"""A plan's money, each operation one database transaction under the plan's lock (taken
first, before any ledger account), keyed by business facts so a retried or duplicated
attempt moves nothing twice:

- a contribution, `plan:<id>:contribution:<n>`: the wallet -> the plan's escrow account, and
  its late fee -> the platform's fees; recorded on the contribution's row;
- a cancellation, `plan:<id>:cancel`: the escrow -> the refund to the wallet and the
  cancellation fee to the platform (domain/purchase_plan.py's rule);
- the award, `plan:<id>:award`: the award credit's loan request is written (the asset, the
  seller, the down payment) and the escrow moves to the loan's escrow account, paid out at
  its disbursement (loans/award_credit.py).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from compliance.audit import append_audit
from core.errors import Conflict, InsufficientFunds, InvalidRequest, PlanWonAwardEvent
from domain.money import ZERO
from domain.purchase_plan import PlanRuleError, award_credit_for, cancellation_refund
from ledger.accounts import escrow_account, platform_account
from ledger.postings import Leg, find_posted, lock_accounts, post_transaction
from loans.common import available_account_of, notify
from loans.requests import workflow_id_for, workflow_input
from models.loans import LoanRequest
from models.plan_workflow import (
    AwardPlanInput,
    AwardPlanResult,
    CancelPlanInput,
    CancelPlanResult,
    CollectContributionInput,
    CollectContributionResult,
    ContributionOverdue,
    StartPlanInput,
)
from models.plans import PlanContribution, PurchasePlan
from models.products import LoanProduct
from plans.requests import award_credit_lendable, award_credit_product
from plans.trail import append_plan_record, lock_plan
from products.service import check_request_fits


def start_plan(session: Session, input: StartPlanInput) -> None:
    """The plan's contributions as its workflow fixed them (once)."""
    plan = lock_plan(session, input.plan_id)
    for item in input.contributions:
        session.execute(
            pg_insert(PlanContribution)
            .values(plan_id=plan.id, number=item.number, due_date=item.due_date, amount=item.amount)
            .on_conflict_do_nothing(index_elements=["plan_id", "number"])
        )
    append_plan_record(
        session,
        plan.id,
        "started",
        "plan.started",
        actor_id=plan.borrower_id,
        actor_role="borrower",
        note=f"{len(input.contributions)} monthly contributions of {plan.monthly_contribution:.2f} {plan.currency} "
        f"toward a {plan.asset_kind} of {plan.asset_price:.2f}",
        details={
            "asset_kind": plan.asset_kind,
            "asset_description": plan.asset_description,
            "asset_price": f"{plan.asset_price:.2f}",
            "seller_id": plan.seller_id,
            "product_id": plan.product_id,
            "loan_term_months": plan.loan_term_months,
            "contributions": [
                {"number": c.number, "due_date": c.due_date, "amount": f"{c.amount:.2f}"} for c in input.contributions
            ],
        },
    )


def collect_contribution(session: Session, input: CollectContributionInput) -> CollectContributionResult:
    plan = lock_plan(session, input.plan_id)
    row = session.get_one(PlanContribution, (plan.id, input.number), populate_existing=True)
    if row.status == "paid":  # an earlier attempt paid it: its figures are the answer
        return CollectContributionResult(
            paid=True,
            late_fee=row.late_fee,
            paid_on=row.paid_on,
            contributed=plan.contributed,
            ledger_transaction_id=row.ledger_transaction_id,
        )
    if plan.status != "saving" or row.status == "cancelled":
        return CollectContributionResult(paid=False, contributed=plan.contributed)
    wallet = available_account_of(session, plan.borrower_id)
    escrow = escrow_account(session, "plan", plan.id, plan.currency)
    legs = [Leg(wallet.id, -(row.amount + input.late_fee)), Leg(escrow.id, row.amount)]
    if input.late_fee:
        legs.append(Leg(platform_account(session, "platform_fees", plan.currency).id, input.late_fee))
    try:
        posted = post_transaction(
            session,
            key=f"plan:{plan.id}:contribution:{row.number}",
            kind="plan_contribution",
            legs=legs,
            description=f"plan contribution {row.number}",
            details={"plan_id": str(plan.id), "amount": f"{row.amount:.2f}", "late_fee": f"{input.late_fee:.2f}"},
        )
    except InsufficientFunds:
        return CollectContributionResult(paid=False, contributed=plan.contributed)
    row.status, row.late_fee, row.paid_on, row.ledger_transaction_id = "paid", input.late_fee, input.paid_on, posted.id
    plan.contributed += row.amount
    plan.late_fees_paid += input.late_fee
    late = f", with a late fee of {input.late_fee:.2f}" if input.late_fee else ""
    append_plan_record(
        session,
        plan.id,
        f"contribution:{row.number}:paid",
        "plan.contribution_paid",
        note=f"contribution {row.number} of {row.amount:.2f} paid on {input.paid_on.isoformat()}{late}",
        details={
            "number": row.number,
            "due_date": row.due_date,
            "paid_on": input.paid_on,
            "amount": f"{row.amount:.2f}",
            "late_fee": f"{input.late_fee:.2f}",
            "contributed": f"{plan.contributed:.2f}",
            "ledger_transaction_id": posted.id,
        },
    )
    return CollectContributionResult(
        paid=True,
        late_fee=input.late_fee,
        paid_on=input.paid_on,
        contributed=plan.contributed,
        ledger_transaction_id=posted.id,
    )


def mark_contribution_overdue(session: Session, input: ContributionOverdue) -> None:
    plan = lock_plan(session, input.plan_id)
    row = session.get_one(PlanContribution, (plan.id, input.number), populate_existing=True)
    if row.status != "pending":
        return
    row.status = "overdue"
    append_plan_record(
        session,
        plan.id,
        f"contribution:{row.number}:overdue",
        "plan.contribution_overdue",
        note=f"contribution {row.number} of {row.amount:.2f}, due {row.due_date.isoformat()}, was not paid",
        details={"number": row.number, "due_date": row.due_date, "amount": f"{row.amount:.2f}"},
    )
    notify(
        session,
        plan.borrower_id,
        None,
        "plan_contribution_overdue",
        f"contribution {row.number} of your plan ({row.amount:.2f} {plan.currency}) is overdue: top up your wallet",
        f"plan:{plan.id}:contribution:{row.number}:overdue",
    )


def cancel_plan(session: Session, input: CancelPlanInput) -> CancelPlanResult:
    """The borrower's (or the default's) cancellation: refused once the plan won an award
    event (its award, with the bid it paid, goes on)."""
    plan = lock_plan(session, input.plan_id)
    if plan.status == "saving" and plan.award_event_id is not None:
        raise PlanWonAwardEvent(
            "the plan won an award event: its award is under way", award_event_id=str(plan.award_event_id)
        )
    return _refund(session, plan, input)


def _refund(session: Session, plan: PurchasePlan, input: CancelPlanInput) -> CancelPlanResult:
    """The plan ends cancelled, `input.refund_percent` of its contributions back (the caller
    holds the plan's lock)."""
    key = f"plan:{plan.id}:cancel"
    if plan.status == "cancelled":
        done = find_posted(session, key)
        refunded = plan.refunded or ZERO
        return CancelPlanResult(
            refunded=refunded,
            cancellation_fee=Decimal(done.details["cancellation_fee"]) if done else ZERO,
            ledger_transaction_id=done.id if done else None,
        )
    if plan.status == "awarded":
        raise Conflict("the plan was awarded: its award credit is under way")
    escrow = escrow_account(session, "plan", plan.id, plan.currency)
    wallet = available_account_of(session, plan.borrower_id)
    fees = platform_account(session, "platform_fees", plan.currency)
    lock_accounts(session, {escrow.id, wallet.id, fees.id})
    session.refresh(escrow)
    if escrow.balance != plan.contributed:
        # (never expected: retried, and an operator sees it in the workflow, rather than refused)
        raise RuntimeError(f"the plan's escrow holds {escrow.balance:.2f}, its contributions {plan.contributed:.2f}")
    refund, fee = cancellation_refund(plan.contributed, input.refund_percent)
    transaction_id = None
    if plan.contributed:
        legs = [Leg(escrow.id, -plan.contributed)]
        if refund:
            legs.append(Leg(wallet.id, refund))
        if fee:
            legs.append(Leg(fees.id, fee))
        posted = post_transaction(
            session,
            key=key,
            kind="plan_cancelled",
            legs=legs,
            description="plan cancelled: contributions refunded per the product's rule",
            details={"refunded": f"{refund:.2f}", "cancellation_fee": f"{fee:.2f}", "plan_id": str(plan.id)},
        )
        transaction_id = posted.id
    _close(session, plan, "cancelled", input.reason, input.at)
    plan.refunded = refund
    append_plan_record(
        session,
        plan.id,
        "cancelled",
        "plan.cancelled",
        actor_id=input.actor_id,
        actor_role=input.actor_role,
        note=f"cancelled ({input.reason}): {refund:.2f} of {plan.contributed:.2f} contributed back to the wallet",
        details={
            "reason": input.reason,
            "contributed": f"{plan.contributed:.2f}",
            "refund_percent": input.refund_percent,
            "refunded": f"{refund:.2f}",
            "cancellation_fee": f"{fee:.2f}",
            "ledger_transaction_id": transaction_id,
        },
    )
    notify(
        session,
        plan.borrower_id,
        None,
        "plan_cancelled",
        f"your plan was cancelled ({input.reason}): {refund:.2f} {plan.currency} is back in your wallet",
        f"plan:{plan.id}:cancelled",
    )
    return CancelPlanResult(refunded=refund, cancellation_fee=fee, ledger_transaction_id=transaction_id)


def _close(session: Session, plan: PurchasePlan, status: str, reason: str, at: datetime) -> None:
    plan.status, plan.status_reason, plan.closed_at = status, reason, at
    session.execute(
        update(PlanContribution)
        .where(PlanContribution.plan_id == plan.id, PlanContribution.status.in_(("pending", "overdue")))
        .values(status="cancelled")
    )


def award_plan(session: Session, input: AwardPlanInput) -> AwardPlanResult:
    """The award: the rest of the price becomes an award credit (its loan request written
    here, its workflow started by the plan's), the contributions its down payment. If the
    award credit product can no longer lend it (its rules changed since the plan was made),
    the plan is cancelled with every contribution refunded: not the borrower's doing."""
    plan = lock_plan(session, input.plan_id)
    if plan.status == "awarded":
        assert plan.award_loan_id is not None
        loan = session.get_one(LoanRequest, plan.award_loan_id)
        return AwardPlanResult(loan=workflow_input(session, loan, input.time_scale, input.time_zone))
    if plan.status == "cancelled":
        return AwardPlanResult(refused=plan.status_reason or "cancelled", refunded=plan.refunded)
    escrow = escrow_account(session, "plan", plan.id, plan.currency)
    session.refresh(escrow)
    if escrow.balance != plan.contributed:
        # (never expected: retried, and an operator sees it in the workflow, rather than refused)
        raise RuntimeError(f"the plan's escrow holds {escrow.balance:.2f}, its contributions {plan.contributed:.2f}")
    try:
        credit = award_credit_product(session, session.get_one(LoanProduct, plan.product_id))
        amounts = award_credit_for(
            plan.asset_price, escrow.balance, credit.platform_fee_percent, credit.reserve_fund_percent
        )
        check_request_fits(credit, amounts.loan_amount, plan.loan_term_months)
        if not award_credit_lendable(credit, plan.asset_price, escrow.balance):
            raise InvalidRequest(
                f"the contributions do not pay product {credit.code!r}'s least down payment and withholding"
            )
        if plan.asset_kind not in (credit.asset_kinds or []):
            raise InvalidRequest(f"product {credit.code!r} no longer finances a {plan.asset_kind}")
    except (Conflict, InvalidRequest, PlanRuleError) as error:
        reason = f"award credit unavailable: {getattr(error, 'detail', str(error))}"
        # (everything back, the award event it may have won notwithstanding)
        result = _refund(
            session, plan, CancelPlanInput(plan_id=plan.id, reason=reason, refund_percent=Decimal(100), at=input.at)
        )
        return AwardPlanResult(refused=reason, refunded=result.refunded)
    loan_id = uuid.uuid4()
    loan = LoanRequest(
        id=loan_id,
        borrower_id=plan.borrower_id,
        product_id=credit.id,
        amount=amounts.loan_amount,
        currency=plan.currency,
        term_months=plan.loan_term_months,
        purpose=f"{plan.asset_kind}: {plan.asset_description} (awarded from a programmed purchase)",
        status="pending",
        workflow_id=workflow_id_for(loan_id),
        client_key=f"plan:{plan.id}:award",
        seller_id=plan.seller_id,
        asset_kind=plan.asset_kind,
        asset_description=plan.asset_description,
        asset_price=plan.asset_price,
        down_payment=amounts.down_payment,
        plan_id=plan.id,
    )
    session.add(loan)
    session.flush()
    posted = None
    if escrow.balance:
        posted = post_transaction(
            session,
            key=f"plan:{plan.id}:award",
            kind="plan_awarded",
            loan_id=loan.id,
            legs=[
                Leg(escrow.id, -escrow.balance),
                Leg(escrow_account(session, "loan", loan.id, plan.currency).id, escrow.balance),
            ],
            description="the plan's contributions held for its award credit's payout",
            details={"plan_id": str(plan.id), "contributed": f"{escrow.balance:.2f}"},
        )
    _close(session, plan, "awarded", input.reason, input.at)
    plan.award_loan_id = loan.id
    plan.award_event_id = plan.award_event_id or input.award_event_id
    facts = {
        "reason": input.reason,
        "award_event_id": input.award_event_id,
        "contributed": f"{escrow.balance:.2f}",
        "asset_price": f"{plan.asset_price:.2f}",
        "loan_id": loan.id,
        "loan_amount": f"{amounts.loan_amount:.2f}",
        "down_payment": f"{amounts.down_payment:.2f}",
        "withholding": f"{amounts.withholding:.2f}",
        "change": f"{amounts.change:.2f}",
        "ledger_transaction_id": posted.id if posted else None,
    }
    append_plan_record(
        session,
        plan.id,
        "awarded",
        "plan.awarded",
        note=f"awarded ({input.reason}): an award credit of {amounts.loan_amount:.2f} for the rest of the price; "
        f"{amounts.down_payment:.2f} of the contributions is the down payment",
        details=facts,
    )
    append_audit(
        session,
        loan.id,
        f"plan:{plan.id}:awarded",
        "loan.awarded_from_plan",
        note=f"the award credit of plan {plan.id}: {plan.asset_kind} of {plan.asset_price:.2f}, "
        f"down payment {amounts.down_payment:.2f} from its contributions",
        details=facts,
    )
    notify(
        session,
        plan.borrower_id,
        loan.id,
        "plan_awarded",
        f"your plan was awarded: the {plan.asset_kind} is yours once its award credit of "
        f"{amounts.loan_amount:.2f} {plan.currency} is funded",
        f"plan:{plan.id}:awarded",
    )
    return AwardPlanResult(loan=workflow_input(session, loan, input.time_scale, input.time_zone))


def plan_contributions(session: Session, plan_id: uuid.UUID) -> list[PlanContribution]:
    return list(
        session.scalars(
            select(PlanContribution).where(PlanContribution.plan_id == plan_id).order_by(PlanContribution.number)
        )
    )
