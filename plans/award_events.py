"""A product's monthly award event (draw or bid), held once per product and month.

In one database transaction, under the locks of every entrant's plan (in id order): the
eligible plans are the entries (saving, nothing overdue, at least one contribution paid, not
awarded by an earlier event); a bid counts only if its wallet holds it then (otherwise the
entry is recorded with no bid, and why); the seed is a hash of the recorded facts; the
winner is decided by domain/purchase_plan.decide_award; the winner's bid is paid into its
plan's escrow (it counts as a contribution); the event is stored with its entries, seed and
winner, and every entrant's trail records them. Deciding again from any entrant's trail
gives the same winner. The winner's plan workflow is then told (by the event's workflow).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from core.errors import Conflict, InvalidRequest, NotFound
from domain.purchase_plan import AwardEntry, PlanRuleError, award_credit_for, decide_award, event_seed
from ledger.accounts import escrow_account
from ledger.postings import Leg, lock_accounts, post_transaction
from loans.common import available_account_of, notify
from models.plan_workflow import AwardEventInput, AwardEventResult
from models.plans import AwardBid, AwardEvent, PlanContribution, PurchasePlan
from models.products import LoanProduct
from plans.requests import award_credit_lendable, award_credit_product
from plans.trail import append_plan_record, lock_plan
from products.service import current_product


def check_period(period: str) -> str:
    try:
        date.fromisoformat(f"{period}-01")
    except ValueError:
        raise InvalidRequest("the period is a month, YYYY-MM", field="period") from None
    if len(period) != 7:
        raise InvalidRequest("the period is a month, YYYY-MM", field="period")
    return period


def _eligible_plan_ids(session: Session, product_code: str) -> list[uuid.UUID]:
    overdue = exists().where(PlanContribution.plan_id == PurchasePlan.id, PlanContribution.status == "overdue")
    paid = exists().where(PlanContribution.plan_id == PurchasePlan.id, PlanContribution.status == "paid")
    return list(
        session.scalars(
            select(PurchasePlan.id)
            .join(LoanProduct, LoanProduct.id == PurchasePlan.product_id)
            .where(
                LoanProduct.code == product_code,
                PurchasePlan.status == "saving",
                PurchasePlan.award_event_id.is_(None),
                ~overdue,
                paid,
            )
            .order_by(PurchasePlan.id)
        )
    )


def hold_award_event(session: Session, input: AwardEventInput, at: datetime) -> AwardEventResult:
    check_period(input.period)
    held = session.scalars(
        select(AwardEvent).where(AwardEvent.product_code == input.product_code, AwardEvent.period == input.period)
    ).first()
    if held is not None:  # held before (a retried activity, a second ask): its outcome stands
        return _result(session, held)
    product = current_product(session, input.product_code)
    if product.modality != "programmed_purchase" or product.award_rule not in ("draw", "bid"):
        raise Conflict(f"product {product.code!r} awards no plan by event (its rule: {product.award_rule})")
    plans = [lock_plan(session, plan_id) for plan_id in _eligible_plan_ids(session, product.code)]
    # (re-checked under the locks: a plan may have changed between the query and its lock)
    still = set(_eligible_plan_ids(session, product.code))
    plans = [p for p in plans if p.id in still and p.status == "saving" and p.award_event_id is None]
    credit = award_credit_product(session, product)
    bids = {
        b.plan_id: b.amount
        for b in session.scalars(
            select(AwardBid).where(AwardBid.period == input.period, AwardBid.plan_id.in_([p.id for p in plans]))
        )
    }
    if product.award_rule != "bid":
        bids = {}
    wallets = {p.id: available_account_of(session, p.borrower_id) for p in plans if p.id in bids}
    escrows = {p.id: escrow_account(session, "plan", p.id, p.currency) for p in plans if p.id in bids}
    if wallets:  # every account a winning bid may move, in one ascending lock (ledger/postings.py)
        lock_accounts(session, {w.id for w in wallets.values()} | {e.id for e in escrows.values()})
    entries: list[AwardEntry] = []
    records: list[dict[str, str]] = []
    entrants: list[PurchasePlan] = []
    for plan in plans:
        bid = bids.get(plan.id, Decimal("0.00"))
        record_note: dict[str, str] = {}
        if bid:
            session.refresh(wallets[plan.id])
            if wallets[plan.id].balance < bid:
                record_note = {"bid_not_counted": "the wallet did not hold it"}
                bid = Decimal("0.00")
            elif not award_credit_lendable(credit, plan.asset_price, plan.contributed + bid):
                record_note = {"bid_not_counted": "with it the award credit would not be one its product lends"}
                bid = Decimal("0.00")
        # Only plans whose contributions (with the bid they pay if they win) already pay for
        # their award credit (its withholding and least down payment) enter.
        if not award_credit_lendable(credit, plan.asset_price, plan.contributed + bid):
            continue
        entry = AwardEntry(str(plan.id), plan.asset_price, bid)
        entries.append(entry)
        records.append({**entry.as_record(), **record_note})
        entrants.append(plan)
    plans = entrants
    seed = event_seed(product.code, input.period, entries)
    winner = decide_award(product.award_rule, seed, entries)
    event = AwardEvent(
        id=uuid.uuid4(),
        product_code=product.code,
        period=input.period,
        rule=product.award_rule,
        seed=seed,
        entries=records,
        winner_plan_id=uuid.UUID(winner.plan_id) if winner else None,
        winning_bid=winner.bid if winner and winner.bid else None,
        held_by=input.held_by,
        created_at=at,
    )
    session.add(event)
    session.flush()
    by_id = {str(p.id): p for p in plans}
    if winner is not None:
        plan = by_id[winner.plan_id]
        plan.award_event_id = event.id
        if winner.bid:
            escrow = escrows[plan.id]
            post_transaction(
                session,
                key=f"award-event:{event.id}:bid",
                kind="plan_award_bid",
                legs=[Leg(wallets[plan.id].id, -winner.bid), Leg(escrow.id, winner.bid)],
                description="the winning bid paid into the plan",
                details={"plan_id": str(plan.id), "award_event_id": str(event.id)},
            )
            plan.contributed += winner.bid
    facts = {
        "award_event_id": event.id,
        "product": product.code,
        "period": input.period,
        "rule": product.award_rule,
        "seed": seed,
        "entries": records,
        "winner_plan_id": winner.plan_id if winner else None,
        "winning_bid": f"{winner.bid:.2f}" if winner else None,
    }
    for plan in plans:
        won = winner is not None and winner.plan_id == str(plan.id)
        append_plan_record(
            session,
            plan.id,
            f"award-event:{event.id}",
            "plan.award_event",
            note=f"{product.award_rule} of {input.period} among {len(plans)} plan(s): "
            + ("this plan won" if won else "another plan won" if winner else "no plan won"),
            details=facts,
        )
        if won:
            notify(
                session,
                plan.borrower_id,
                None,
                "plan_award_won",
                f"your plan won the {input.period} award {product.award_rule}",
                f"plan:{plan.id}:award-event:{event.id}",
            )
    return _result(session, event)


def _result(session: Session, event: AwardEvent) -> AwardEventResult:
    winner = session.get(PurchasePlan, event.winner_plan_id) if event.winner_plan_id else None
    return AwardEventResult(
        event_id=event.id,
        winner_plan_id=event.winner_plan_id,
        winner_workflow_id=winner.workflow_id if winner else None,
        entries=len(event.entries),
        at=event.created_at,
    )


def place_bid(session: Session, plan_id: uuid.UUID, borrower_id: uuid.UUID, period: str, amount: Decimal) -> AwardBid:
    """A plan's bid for a month's event (the same month again replaces it, until the event is
    held). The bid is paid only if it wins; it must leave an award credit its product lends."""
    check_period(period)
    plan = lock_plan(session, plan_id)
    if plan.borrower_id != borrower_id:
        raise NotFound(f"no plan {plan_id}")
    product = session.get_one(LoanProduct, plan.product_id)
    if product.award_rule != "bid":
        raise Conflict(f"plans of product {product.code!r} are awarded by {product.award_rule}, not by bid")
    if plan.status != "saving":
        raise Conflict(f"the plan is {plan.status}")
    if session.scalar(select(exists().where(AwardEvent.product_code == product.code, AwardEvent.period == period))):
        raise Conflict(f"the {period} award event was held")
    credit = award_credit_product(session, product)
    try:
        loan = award_credit_for(
            plan.asset_price, plan.contributed + amount, credit.platform_fee_percent, credit.reserve_fund_percent
        )
    except PlanRuleError as error:
        raise InvalidRequest(f"a bid of {amount:.2f}: {error}", field="amount") from None
    if loan.loan_amount < credit.min_amount:
        raise InvalidRequest(
            f"a bid of {amount:.2f} would leave an award credit of {loan.loan_amount:.2f}, under product "
            f"{credit.code!r}'s least {credit.min_amount:.2f}",
            field="amount",
        )
    bid = session.get(AwardBid, (plan.id, period))
    if bid is None:
        bid = AwardBid(plan_id=plan.id, period=period, amount=amount)
        session.add(bid)
    else:
        bid.amount = amount
    append_plan_record(
        session,
        plan.id,
        f"bid:{period}:{uuid.uuid4()}",
        "plan.bid",
        actor_id=borrower_id,
        actor_role="borrower",
        note=f"a bid of {amount:.2f} for the {period} award event",
        details={"period": period, "amount": f"{amount:.2f}"},
    )
    session.flush()
    return bid
