"""Scoring outcomes, operator review, continue-as-new while funding, a refused disbursement.
(A worker killed mid-activity: tests/test_crash_recovery.py, with a real SIGKILL.)"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import select
from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.worker import Worker

from activities.loans import LoanActivities
from api.workflow_calls import execute_loan_update
from core.db import unit_of_work
from core.errors import InvalidRequest
from models.loan_workflow import (
    ApprovalDecision,
    DisburseInput,
    DisburseResult,
    InvestmentRequest,
)
from models.loans import Investment, LoanRequest
from models.product_terms import ProductTerms
from products.catalog import STANDARD
from products.service import create_product
from tests.ledger_helpers import assert_books_balance, new_user
from tests.loan_helpers import (
    balance_of,
    give_money,
    invest,
    make_borrower,
    make_investor,
    replay_and_maybe_record,
    running_worker,
    start_loan,
    wait_for_status,
)
from workflows.loan import LoanWorkflow

D = Decimal


async def test_payment_beyond_the_dti_cap_is_rejected_with_reasons(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    env = time_skipping_env
    borrower = make_borrower(session_factory, income="20000", obligations="5000")
    async with running_worker(env.client, settings, session_factory, task_queue):
        loan = await start_loan(env.client, session_factory, task_queue, borrower, "300000.00", 12)
        result = await loan.handle.result()
    assert result.status == "rejected" and "debt-to-income" in result.rejection_reason
    with session_factory() as session:
        row = session.get(LoanRequest, loan.loan_id)
        assert row.status == "rejected" and row.scoring_score is not None
        assert any(r["factor"] == "debt_to_income" for r in row.scoring_details["reasons"])
    # saved (RECORD_HISTORIES) only once the test's own checks have passed
    await replay_and_maybe_record(loan.handle, "loan_scoring_rejected")


async def test_manual_review_waits_for_an_operator(time_skipping_env, session_factory, settings, seeded, task_queue):
    env = time_skipping_env
    with unit_of_work(session_factory) as session:
        create_product(
            session, ProductTerms(**{**STANDARD.model_dump(), "code": "agro", "requires_manual_approval": True})
        )
        operator = new_user(session, "operator").id
    borrower = make_borrower(session_factory)
    async with running_worker(env.client, settings, session_factory, task_queue):
        approved = await start_loan(env.client, session_factory, task_queue, borrower, "100000.00", 12, product="agro")
        rejected = await start_loan(env.client, session_factory, task_queue, borrower, "100000.00", 12, product="agro")
        for loan in (approved, rejected):
            # scored (a grade) while still in scoring: the loan now awaits the operator
            while not (await wait_for_status(loan.handle, "scoring")).risk_grade:
                await asyncio.sleep(0.02)
        decided = await approved.handle.execute_update(
            LoanWorkflow.decide,
            ApprovalDecision(approve=True, operator_id=operator, reason="documents checked", loan_id=approved.loan_id),
        )
        # Exactly "approved": `_set_status("approved")` assigns the status, then awaits its record
        # activity; the update's wait condition (review over, status no longer "scoring") is
        # checked as soon as the workflow yields there, so the update answers before the
        # activity can complete and `_fund` move the loan on to "funding".
        assert decided.status == "approved"
        with pytest.raises(WorkflowUpdateFailedError):  # decided already
            await approved.handle.execute_update(
                LoanWorkflow.decide, ApprovalDecision(approve=False, operator_id=operator, loan_id=approved.loan_id)
            )
        await wait_for_status(approved.handle, "funding")
        await rejected.handle.execute_update(
            LoanWorkflow.decide,
            ApprovalDecision(
                approve=False, operator_id=operator, reason="collateral missing", loan_id=rejected.loan_id
            ),
        )
        assert (await rejected.handle.result()).rejection_reason == "rejected by operator: collateral missing"
        # nobody invests in the approved one: its funding window closes (the test server skips the days)
        assert ((await approved.handle.result()).status, (await approved.handle.result()).rejection_reason) == (
            "rejected",
            "funding_expired",
        )
    # saved (RECORD_HISTORIES) only once the test's own checks have passed
    await replay_and_maybe_record(approved.handle, "loan_review_approved")
    await replay_and_maybe_record(rejected.handle, "loan_review_rejected")


async def test_review_without_an_operator_times_out_as_rejected(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    env = time_skipping_env
    with unit_of_work(session_factory) as session:
        create_product(
            session, ProductTerms(**{**STANDARD.model_dump(), "code": "agro", "requires_manual_approval": True})
        )
    borrower = make_borrower(session_factory)
    async with running_worker(env.client, settings, session_factory, task_queue):
        loan = await start_loan(env.client, session_factory, task_queue, borrower, "100000.00", 12, product="agro")
        result = await loan.handle.result()
    assert (result.status, result.rejection_reason) == ("rejected", "review_timeout")
    # saved (RECORD_HISTORIES) only once the test's own checks have passed
    await replay_and_maybe_record(loan.handle, "loan_review_timeout")


async def test_funding_continues_as_new_before_the_servers_update_limit(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    """With a budget of 3 updates per run, six investments span several runs; the API's
    update helper retries what arrives while a run hands over, and nothing is lost."""
    env = time_skipping_env
    borrower = make_borrower(session_factory)
    investors = [make_investor(session_factory, "10000") for _ in range(6)]
    async with running_worker(env.client, settings, session_factory, task_queue):
        loan = await start_loan(env.client, session_factory, task_queue, borrower, "60000.00", 6, updates_per_run=3)
        await wait_for_status(loan.handle, "funding")
        for investor in investors:
            investment_id = uuid.uuid4()
            await execute_loan_update(
                env.client,
                loan.handle.id,
                LoanWorkflow.invest,
                InvestmentRequest(
                    investment_id=investment_id, investor_id=investor, amount=D("10000.00"), loan_id=loan.loan_id
                ),
                update_id=f"investment-{investment_id}",
            )
        latest = env.client.get_workflow_handle(loan.handle.id)
        await wait_for_status(latest, "active")
        assert (await latest.describe()).run_id != loan.handle.first_execution_run_id
        assert balance_of(session_factory, borrower).available == D("58200.00")  # 60,000 less 1% + 2%
        assert all(balance_of(session_factory, i).balance == 0 for i in investors)
        give_money(session_factory, borrower, "5000")  # with the 58,200 paid out: every installment
        assert (await loan.handle.result()).status == "repaid"  # follows the runs to the last
    with session_factory() as session:
        assert session.get(LoanRequest, loan.loan_id).status == "repaid"
        assert_books_balance(session)
    # saved (RECORD_HISTORIES) only once the test's own checks have passed
    await replay_and_maybe_record(loan.handle, "loan_continued_while_funding")  # every run


async def test_a_disbursement_refused_for_good_releases_every_reservation(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    """The ledger refuses the payout (here: a stand-in that says the reservations do not add
    up): the loan is cancelled and every investor's money is available again, not stuck."""
    from activities.auto_invest import AutoInvestActivities
    from activities.documents import DocumentActivities
    from activities.errors import business_errors_are_final
    from core.errors import Conflict
    from documents.store import DocumentStore
    from workflows.auto_invest import AutoInvestWorkflow

    env = time_skipping_env

    @activity.defn(name="disburse_loan")
    @business_errors_are_final
    def refuse(input: DisburseInput) -> DisburseResult:
        raise Conflict("reservations total 99999.99, the loan is 100000.00")

    borrower = make_borrower(session_factory)
    investors = [make_investor(session_factory, "60000") for _ in range(2)]
    loans = LoanActivities(session_factory)
    documents = DocumentActivities(session_factory, DocumentStore(settings.documents_dir), settings)
    auto = AutoInvestActivities(session_factory, env.client)
    with ThreadPoolExecutor(max_workers=16) as executor:
        worker = Worker(
            env.client,
            task_queue=task_queue,
            workflows=[LoanWorkflow, AutoInvestWorkflow],
            activity_executor=executor,
            activities=[
                loans.register_loan_request,
                loans.record_loan_status,
                loans.score_loan_request,
                loans.reserve_investment,
                loans.release_investments,
                refuse,
                documents.generate_loan_agreements,
                auto.plan_auto_investments,
                auto.place_auto_investments,
            ],
        )
        async with worker:
            loan = await start_loan(env.client, session_factory, task_queue, borrower, "100000.00", 6)
            await wait_for_status(loan.handle, "funding")
            for investor in investors:
                await invest(loan.handle, investor, "50000.00")
            result = await loan.handle.result()
    assert result.status == "rejected" and result.rejection_reason.startswith("disbursement_refused: reservations")
    for investor in investors:
        balance = balance_of(session_factory, investor)
        assert (balance.available, balance.reserved) == (D("60000.00"), D("0.00"))
    with session_factory() as session:
        assert session.get(LoanRequest, loan.loan_id).status == "rejected"
        assert_books_balance(session)
    # saved (RECORD_HISTORIES) only once the test's own checks have passed
    await replay_and_maybe_record(loan.handle, "loan_disbursement_refused")


async def test_an_investment_resent_in_a_later_run_gets_its_first_answer(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    """Temporal forgets update ids at continue-as-new; the loan does not forget investments.
    An investment resent after the run it was accepted in ended (the API after an RPC
    timeout, a retried auto-invest placement) gets its first answer and adds nothing."""
    env = time_skipping_env
    borrower = make_borrower(session_factory)
    investors = [make_investor(session_factory, "10000") for _ in range(6)]
    async with running_worker(env.client, settings, session_factory, task_queue):
        loan = await start_loan(env.client, session_factory, task_queue, borrower, "60000.00", 6, updates_per_run=3)
        await wait_for_status(loan.handle, "funding")
        requests = [
            InvestmentRequest(
                investment_id=uuid.uuid4(), investor_id=investor, amount=D("10000.00"), loan_id=loan.loan_id
            )
            for investor in investors
        ]
        answers = []
        for request in requests[:3]:  # the third ends the first run
            answers.append(
                await execute_loan_update(
                    env.client,
                    loan.handle.id,
                    LoanWorkflow.invest,
                    request,
                    update_id=f"investment-{request.investment_id}",
                )
            )
        latest = env.client.get_workflow_handle(loan.handle.id)
        while (await latest.describe()).run_id == loan.handle.first_execution_run_id:
            await asyncio.sleep(0.05)
        again = await execute_loan_update(
            env.client,
            loan.handle.id,
            LoanWorkflow.invest,
            requests[0],
            update_id=f"investment-{requests[0].investment_id}",
        )
        assert again == answers[0]
        assert (again.funded_amount, again.remaining) == (D("10000.00"), D("50000.00"))
        snapshot = await latest.query(LoanWorkflow.snapshot)
        assert snapshot.funded_amount == D("30000.00")  # not 40,000
        # the same id with another amount names another investment: refused, nothing added
        with pytest.raises(InvalidRequest):
            await execute_loan_update(
                env.client,
                loan.handle.id,
                LoanWorkflow.invest,
                requests[0].model_copy(update={"amount": D("5000.00")}),
                update_id=f"investment-{requests[0].investment_id}-other",
            )
        for request in requests[3:]:
            await execute_loan_update(
                env.client,
                loan.handle.id,
                LoanWorkflow.invest,
                request,
                update_id=f"investment-{request.investment_id}",
            )
        await wait_for_status(latest, "active")
        assert balance_of(session_factory, borrower).available == D("58200.00")
        assert all(balance_of(session_factory, i).balance == 0 for i in investors)  # each reserved once
        give_money(session_factory, borrower, "5000")
        assert (await loan.handle.result()).status == "repaid"
    with session_factory() as session:
        investments = session.scalars(select(Investment).where(Investment.loan_id == loan.loan_id)).all()
        assert len(investments) == 6 and sum((i.amount for i in investments), D(0)) == D("60000.00")
        assert_books_balance(session)
    # saved (RECORD_HISTORIES) only once the test's own checks have passed
    await replay_and_maybe_record(loan.handle, "loan_investment_resent_after_continue_as_new")
