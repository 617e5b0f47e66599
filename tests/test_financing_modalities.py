"""Financing modalities on Temporal's time-skipping server with the real activities and a real
PostgreSQL: an award credit paid to its seller; a programmed purchase from its first
contribution (one of them late) through its award to its award credit's repayment; a
cancelled plan; an award draw decided again from its trail. Time moves only when a test
sleeps the environment (or waits for a result), so each month is stepped through on purpose."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from core.db import unit_of_work
from documents.store import DocumentStore
from domain.fees import accrue_late_fee
from domain.purchase_plan import AwardEntry, award_credit_for, decide_award, event_seed, withholding
from ledger.accounts import escrow_account, open_wallet, platform_account
from loans.award_credit import Asset
from loans.requests import create_loan_request, workflow_input
from models.ledger import LedgerAccount
from models.plan_workflow import AwardEventInput, CancelPlanRequest, PlanFundsArrived, PlanSnapshot
from models.plans import AwardEvent, PlanContribution, PurchasePlan, Seller
from models.records import AuditRecord, Document
from plans.requests import PlanAsk, create_plan, plan_workflow_input
from plans.trail import plan_records, verify_plan_chain
from tests.history_replay import replay_and_maybe_record
from tests.ledger_helpers import assert_books_balance, new_user
from tests.loan_helpers import (
    balance_of,
    give_money,
    invest,
    make_borrower,
    make_investor,
    running_worker,
    wait_for_status,
)
from tests.test_documents_and_trail import pdf_text
from workflows.award_event import AwardEventWorkflow, award_event_workflow_id
from workflows.loan import LoanWorkflow
from workflows.purchase_plan import PurchasePlanWorkflow

D = Decimal
MONTH = timedelta(days=31)


def make_seller(factory) -> uuid.UUID:
    with unit_of_work(factory) as session:
        user = new_user(session, "seller")
        open_wallet(session, user.id, "seller")
        session.add(Seller(user_id=user.id, legal_name="Dealer LLC"))
        return user.id


def escrow_balance(factory, owner: str, owner_id: uuid.UUID) -> Decimal:
    with factory() as session:
        return session.scalar(select(LedgerAccount.balance).where(LedgerAccount.code == f"escrow:{owner}:{owner_id}"))


async def start_plan(client, factory, task_queue, borrower, seller, *, product, price, monthly, months, loan_term=6):
    def prepare():
        with unit_of_work(factory) as session:
            plan, _ = create_plan(
                session,
                borrower,
                PlanAsk(
                    product_code=product,
                    asset_kind="truck",
                    asset_description="KAMAZ 65115, 2025",
                    asset_price=D(price),
                    seller_id=seller,
                    monthly_contribution=D(monthly),
                    contribution_months=months,
                    loan_term_months=loan_term,
                ),
                simulation_id=None,
                client_key=None,
            )
            wf_input = plan_workflow_input(session, plan, 1, "UTC").model_copy(update={"search_attributes": False})
            return plan.id, plan.workflow_id, wf_input

    plan_id, workflow_id, wf_input = await asyncio.to_thread(prepare)
    handle = await client.start_workflow(PurchasePlanWorkflow.run, wf_input, id=workflow_id, task_queue=task_queue)
    return plan_id, handle


async def plan_reaches(handle, check, timeout: float = 30.0) -> PlanSnapshot:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        snapshot: PlanSnapshot = await handle.query(PurchasePlanWorkflow.snapshot)
        if check(snapshot):
            return snapshot
        if loop.time() > deadline:
            raise AssertionError(f"the plan stayed {snapshot}")
        await asyncio.sleep(0.05)


def contributions_of(factory, plan_id) -> list[PlanContribution]:
    with factory() as session:
        return list(
            session.scalars(
                select(PlanContribution).where(PlanContribution.plan_id == plan_id).order_by(PlanContribution.number)
            )
        )


async def test_an_award_credit_is_paid_to_the_seller_and_the_ledger_balances(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    client = time_skipping_env.client
    borrower, seller = make_borrower(session_factory), make_seller(session_factory)
    investors = [make_investor(session_factory, "300000") for _ in range(2)]
    # a truck of 500,000 with 100,000 down: a loan of 400,000; the disbursement keeps its 1%
    # fee and 2% reserve contribution (12,000), held from the wallet with the down payment
    held = D("100000.00") + withholding(D("400000.00"), D("1.000"), D("2.000"))
    assert held == D("112000.00")
    give_money(session_factory, borrower, "117000")
    with unit_of_work(session_factory) as session:
        loan, _ = create_loan_request(
            session,
            borrower,
            product_code="vehicle-award-credit",
            amount=None,
            term_months=6,
            purpose="a truck for the farm",
            simulation_id=None,
            client_key=None,
            asset=Asset("truck", "KAMAZ 65115, 2025", D("500000.00"), D("100000.00"), seller),
        )
        assert loan.amount == D("400000.00")
        wf_input = workflow_input(session, loan, 1).model_copy(update={"search_attributes": False})
    assert balance_of(session_factory, borrower).available == D("5000.00")
    assert escrow_balance(session_factory, "loan", loan.id) == held
    async with running_worker(client, settings, session_factory, task_queue):
        handle = await client.start_workflow(LoanWorkflow.run, wf_input, id=loan.workflow_id, task_queue=task_queue)
        await wait_for_status(handle, "funding")
        for investor in investors:
            await invest(handle, investor, "200000.00")
        await wait_for_status(handle, "active")
        # the seller has the price exactly; nothing is left in escrow; the borrower got nothing
        # in cash (the loan bought the truck)
        assert balance_of(session_factory, seller).available == D("500000.00")
        assert escrow_balance(session_factory, "loan", loan.id) == D("0.00")
        assert balance_of(session_factory, borrower).available == D("5000.00")
        with session_factory() as session:
            assert_books_balance(session)
        give_money(session_factory, borrower, "420000")  # every installment of the 400,000
        result = await handle.result()
    assert result.status == "repaid"
    with session_factory() as session:
        assert_books_balance(session)
        fees = platform_account(session, "platform_fees")
        reserve = platform_account(session, "reserve_fund")
        assert (fees.balance, reserve.balance) == (D("4000.00"), D("8000.00"))
        trail = {
            r.action: r
            for r in session.scalars(select(AuditRecord).where(AuditRecord.loan_id == loan.id).order_by(AuditRecord.id))
        }
        requested = trail["loan.requested"].details
        assert (
            requested["asset_kind"],
            requested["asset_price"],
            requested["down_payment"],
            requested["seller_id"],
        ) == (
            "truck",
            "500000.00",
            "100000.00",
            str(seller),
        )
        disbursed = trail["loan.disbursed"]
        assert disbursed.details["to_seller"] == "500000.00" and "paid to the seller" in (disbursed.note or "")
        # the borrower's agreement names the asset, its price, the down payment and the seller
        document = session.scalars(
            select(Document).where(Document.loan_id == loan.id, Document.owner_id == borrower)
        ).one()
        text = re.sub(r"\s+", " ", pdf_text(DocumentStore(settings.documents_dir).read(document.sha256)))
        for said in ("KAMAZ 65115, 2025", "500 000.00", "100 000.00", "Dealer LLC", "Paid to the seller"):
            assert said in text, said
    await replay_and_maybe_record(handle, "award_credit_repaid")


async def test_an_unfunded_award_credit_gives_the_down_payment_back(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    client = time_skipping_env.client
    borrower, seller = make_borrower(session_factory), make_seller(session_factory)
    give_money(session_factory, borrower, "112000")
    with unit_of_work(session_factory) as session:
        loan, _ = create_loan_request(
            session,
            borrower,
            product_code="vehicle-award-credit",
            amount=None,
            term_months=6,
            purpose="a truck",
            simulation_id=None,
            client_key=None,
            asset=Asset("truck", "KAMAZ 65115, 2025", D("500000.00"), D("100000.00"), seller),
        )
        wf_input = workflow_input(session, loan, 1).model_copy(update={"search_attributes": False})
    assert balance_of(session_factory, borrower).available == D("0.00")
    async with running_worker(client, settings, session_factory, task_queue):
        handle = await client.start_workflow(LoanWorkflow.run, wf_input, id=loan.workflow_id, task_queue=task_queue)
        result = await handle.result()  # nobody invests: the funding window closes
    assert result.status == "rejected"
    assert balance_of(session_factory, borrower).available == D("112000.00")
    assert balance_of(session_factory, seller).available == D("0.00")
    assert escrow_balance(session_factory, "loan", loan.id) == D("0.00")
    with session_factory() as session:
        assert_books_balance(session)


async def test_a_programmed_purchase_saves_with_a_late_contribution_is_awarded_and_its_credit_repaid(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    env = time_skipping_env
    client = env.client
    borrower, seller = make_borrower(session_factory), make_seller(session_factory)
    investors = [make_investor(session_factory, "300000") for _ in range(2)]
    give_money(session_factory, borrower, "30000")  # the first contribution only
    async with running_worker(client, settings, session_factory, task_queue):
        # 30% of 300,000 awards it: at the third contribution of 30,000
        plan_id, handle = await start_plan(
            client, session_factory, task_queue, borrower, seller,
            product="vehicle-plan-share", price="300000.00", monthly="30000.00", months=5,
        )  # fmt: skip
        await env.sleep(MONTH)
        await plan_reaches(handle, lambda s: s.contributions_paid == 1)
        # the second falls due with an empty wallet: overdue once its day has ended
        await env.sleep(MONTH + timedelta(days=5))
        await plan_reaches(handle, lambda s: s.contributions_overdue == 1)
        give_money(session_factory, borrower, "63000")  # the second (late, with its fee) and the third
        await handle.signal(PurchasePlanWorkflow.funds_arrived, PlanFundsArrived(plan_id=plan_id))
        await plan_reaches(handle, lambda s: s.contributions_paid == 2)
        second = contributions_of(session_factory, plan_id)[1]
        days_late = (second.paid_on - second.due_date).days
        assert days_late > 3  # past the 3 days' grace
        assert second.late_fee == accrue_late_fee(D("30000.00"), D("0.100"), 3, 0, days_late) > 0
        # the third contribution reaches the share: awarded, its award credit started
        await env.sleep(MONTH)
        snapshot = await plan_reaches(handle, lambda s: s.status == "awarded")
        assert snapshot.contributed == D("90000.00") and snapshot.award_loan_id is not None
        loan_id = snapshot.award_loan_id  # (no waiting on results here: it would let time run)
        credit = award_credit_for(D("300000.00"), D("90000.00"), D("1.000"), D("2.000"))
        loan_handle = client.get_workflow_handle_for(LoanWorkflow.run, f"loan-{loan_id}")
        snapshot_loan = await wait_for_status(loan_handle, "funding")
        assert snapshot_loan.status == "funding"
        half = (credit.loan_amount / 2).quantize(D("0.01"))
        await invest(loan_handle, investors[0], str(half))
        await invest(loan_handle, investors[1], str(credit.loan_amount - half))
        await wait_for_status(loan_handle, "active")
        assert balance_of(session_factory, seller).available == D("300000.00")
        give_money(session_factory, borrower, str(credit.loan_amount + D("20000")))
        # (a handle looked up by id does not let the test server's time run by itself)
        async with env.time_skipping_unlocked():
            loan_result = await loan_handle.result()
    assert loan_result.status == "repaid"
    assert escrow_balance(session_factory, "plan", plan_id) == D("0.00")
    assert escrow_balance(session_factory, "loan", loan_id) == D("0.00")
    with session_factory() as session:
        assert_books_balance(session)
        plan = session.get_one(PurchasePlan, plan_id)
        assert (plan.status, plan.award_loan_id, plan.contributed) == ("awarded", loan_id, D("90000.00"))
        records = plan_records(session, plan_id)
        assert verify_plan_chain(records).intact
        assert [r.action for r in records] == [
            "plan.started",
            "plan.contribution_paid",
            "plan.contribution_overdue",
            "plan.contribution_paid",
            "plan.contribution_paid",
            "plan.awarded",
        ]
        awarded = records[-1].details
        assert (awarded["loan_amount"], awarded["down_payment"]) == (
            f"{credit.loan_amount:.2f}",
            f"{credit.down_payment:.2f}",
        )
        loan_trail = [r.action for r in session.scalars(select(AuditRecord).where(AuditRecord.loan_id == loan_id))]
        assert "loan.awarded_from_plan" in loan_trail
    # what the borrower paid in: three contributions, the late fee, the change back
    await replay_and_maybe_record(handle, "plan_awarded_with_a_late_contribution")
    await replay_and_maybe_record(loan_handle, "award_credit_from_a_plan_repaid")


async def test_a_cancelled_plan_returns_its_contributions_per_the_rule(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    env = time_skipping_env
    client = env.client
    borrower, seller = make_borrower(session_factory), make_seller(session_factory)
    give_money(session_factory, borrower, "40000")
    async with running_worker(client, settings, session_factory, task_queue):
        plan_id, handle = await start_plan(
            client, session_factory, task_queue, borrower, seller,
            product="vehicle-plan", price="600000.00", monthly="20000.00", months=12,
        )  # fmt: skip
        await env.sleep(MONTH * 2)
        await plan_reaches(handle, lambda s: s.contributions_paid == 2)
        result = await handle.execute_update(
            PurchasePlanWorkflow.cancel, CancelPlanRequest(actor_id=borrower), id=f"cancel-{plan_id}"
        )
        # the vehicle plan gives back 90% of the contributions: 36,000 of 40,000
        assert (result.refunded, result.cancellation_fee) == (D("36000.00"), D("4000.00"))
        final = await handle.result()
    assert final.status == "cancelled"
    assert balance_of(session_factory, borrower).available == D("36000.00")
    assert escrow_balance(session_factory, "plan", plan_id) == D("0.00")
    with session_factory() as session:
        assert_books_balance(session)
        assert platform_account(session, "platform_fees").balance == D("4000.00")
        plan = session.get_one(PurchasePlan, plan_id)
        assert (plan.status, plan.refunded) == ("cancelled", D("36000.00"))
        assert {c.status for c in contributions_of(session_factory, plan_id)[2:]} == {"cancelled"}
        assert plan_records(session, plan_id)[-1].action == "plan.cancelled"
    await replay_and_maybe_record(handle, "plan_cancelled")


async def test_an_award_draw_is_decided_again_from_its_trail(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    env = time_skipping_env
    client = env.client
    seller = make_seller(session_factory)
    plans = {}
    async with running_worker(client, settings, session_factory, task_queue):
        for _ in range(3):
            borrower = make_borrower(session_factory)
            give_money(session_factory, borrower, "40000")
            # after one contribution of 40,000 the award credit (~268,000) leaves a down payment
            # above the credit product's least 10% of the price: eligible from the first
            plan_id, handle = await start_plan(
                client, session_factory, task_queue, borrower, seller,
                product="vehicle-plan", price="300000.00", monthly="40000.00", months=5,
            )  # fmt: skip
            plans[plan_id] = handle
        await env.sleep(MONTH)
        for handle in plans.values():
            await plan_reaches(handle, lambda s: s.contributions_paid == 1)
        event_handle = await client.start_workflow(
            AwardEventWorkflow.run,
            AwardEventInput(product_code="vehicle-plan", period="2027-01"),
            id=award_event_workflow_id("vehicle-plan", "2027-01"),
            task_queue=task_queue,
        )
        held = await event_handle.result()
        assert held.entries == 3 and held.winner_plan_id in plans
        winner = plans[held.winner_plan_id]
        snapshot = await plan_reaches(winner, lambda s: s.status == "awarded")
        assert snapshot.award_loan_id is not None
        for plan_id, handle in plans.items():
            if plan_id != held.winner_plan_id:
                assert (await handle.query(PurchasePlanWorkflow.snapshot)).status == "saving"
    with session_factory() as session:
        event = session.get_one(AwardEvent, held.event_id)
        for plan_id in plans:
            # every entrant's trail holds the event's facts, and they decide it again the same
            record = next(r for r in plan_records(session, plan_id) if r.action == "plan.award_event")
            entries = [AwardEntry.from_record(e) for e in record.details["entries"]]
            seed = event_seed(record.details["product"], record.details["period"], entries)
            assert seed == record.details["seed"] == event.seed
            again = decide_award(record.details["rule"], seed, entries)
            assert again is not None and again.plan_id == record.details["winner_plan_id"] == str(held.winner_plan_id)
            assert verify_plan_chain(plan_records(session, plan_id)).intact
        # held once: asking again gives the same event
        from plans.award_events import hold_award_event

        again_held = hold_award_event(
            session, AwardEventInput(product_code="vehicle-plan", period="2027-01"), event.created_at
        )
        assert again_held.event_id == event.id
        assert session.scalar(select(AwardEvent.id).where(AwardEvent.period == "2027-01")) == event.id
        assert escrow_account(session, "plan", held.winner_plan_id).balance == D("0.00")
        assert_books_balance(session)
    await replay_and_maybe_record(event_handle, "award_event_draw")


async def test_an_award_credit_nobody_funds_gives_the_plan_its_contributions_back(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    env = time_skipping_env
    client = env.client
    borrower, seller = make_borrower(session_factory), make_seller(session_factory)
    give_money(session_factory, borrower, "90000")
    async with running_worker(client, settings, session_factory, task_queue):
        plan_id, handle = await start_plan(
            client, session_factory, task_queue, borrower, seller,
            product="vehicle-plan-share", price="300000.00", monthly="30000.00", months=5,
        )  # fmt: skip
        await env.sleep(MONTH * 3)
        snapshot = await plan_reaches(handle, lambda s: s.status == "awarded")
        loan_handle = client.get_workflow_handle_for(LoanWorkflow.run, f"loan-{snapshot.award_loan_id}")
        async with env.time_skipping_unlocked():
            loan_result = await loan_handle.result()  # nobody invests: the funding window closes
    assert loan_result.status == "rejected"
    # the contributions come back in full; the plan's trail says why
    assert balance_of(session_factory, borrower).available == D("90000.00")
    assert balance_of(session_factory, seller).available == D("0.00")
    assert escrow_balance(session_factory, "loan", snapshot.award_loan_id) == D("0.00")
    with session_factory() as session:
        assert_books_balance(session)
        plan = session.get_one(PurchasePlan, plan_id)
        assert plan.refunded == D("90000.00") and "not paid out" in (plan.status_reason or "")
        records = plan_records(session, plan_id)
        assert records[-1].action == "plan.award_credit_failed" and verify_plan_chain(records).intact
