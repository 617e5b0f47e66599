"""The loans' PDFs render on the documents' own task queue (worker.build_documents_worker), so
agreements waiting for a renderer never hold the activity slots that investments, scoring and
collections wait for. On one queue, with the two stuck agreements below, the third loan is never
even scored (checked on the code before the patch documents-own-queue)."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from domain.refusals import AgreementsPending
from models.documents_io import LoanAgreementsInput, LoanAgreementsResult, documents_task_queue
from models.loan_workflow import TradeRequest
from models.loans import RepaymentInstallment
from models.records import Document
from models.users import User
from tests.ledger_helpers import assert_books_balance
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

D = Decimal


async def test_agreements_waiting_for_a_renderer_hold_up_no_investment(
    time_skipping_env, session_factory, settings, seeded, task_queue, monkeypatch
):
    import worker

    # As many slots for the platform's activities as there are agreements stuck below: on one
    # queue they would take them all, and the third loan could not even be scored.
    monkeypatch.setattr(worker, "ACTIVITY_THREADS", 2)
    env = time_skipping_env
    renderer_free = threading.Event()
    asked_on: list[str] = []

    @activity.defn(name="generate_loan_agreements")
    def generate_loan_agreements(input: LoanAgreementsInput) -> LoanAgreementsResult:
        asked_on.append(activity.info().task_queue)
        assert renderer_free.wait(120), "the test never freed the renderer"
        return LoanAgreementsResult(documents=0)

    investors = [make_investor(session_factory, "60000") for _ in range(5)]
    async with running_worker(env.client, settings, session_factory, task_queue, stand_ins=[generate_loan_agreements]):
        # (freed in here on a failure too: the workers' shutdown waits for their threads)
        try:
            paid_out = []
            for pair in (investors[0:2], investors[2:4]):
                borrower = make_borrower(session_factory)
                loan = await start_loan(env.client, session_factory, task_queue, borrower, "100000.00", 6)
                await wait_for_status(loan.handle, "funding")
                for investor in pair:
                    await invest(loan.handle, investor, "50000.00")
                paid_out.append(loan)
            for _ in range(600):  # both loans paid out, their agreements waiting for the renderer
                if len(asked_on) >= 2:
                    break
                await asyncio.sleep(0.05)
            assert len(asked_on) >= 2 and not renderer_free.is_set()

            borrower = make_borrower(session_factory)
            third = await start_loan(env.client, session_factory, task_queue, borrower, "100000.00", 6)
            await wait_for_status(third.handle, "funding")
            accepted = await asyncio.wait_for(invest(third.handle, investors[4], "50000.00"), timeout=30)
            assert accepted.funded_amount == 50000
        finally:
            renderer_free.set()
        for loan in paid_out:  # the agreements done, the loans repay
            await wait_for_status(loan.handle, "active")
        for loan in (*paid_out, third):
            await loan.handle.terminate("test over")
    assert set(asked_on) == {documents_task_queue(task_queue)}


MONTH_PER_4_SECONDS = 2_592_000 // 4


def _agreements_as_rendered_now(session_factory, settings, loan_id: uuid.UUID) -> dict[str, str]:
    """Each of the loan's agreements (subject key -> sha256) as the renderer would draw it at
    this moment, registering nothing."""
    from documents.agreements import (
        _loan_facts,
        borrower_agreement_context,
        investment_agreement_context,
        investment_shares,
    )
    from documents.render import render_pdf

    with session_factory() as session:
        facts = _loan_facts(session, loan_id)
        shares = investment_shares(session, facts)
        drawn = {
            f"loan:{loan_id}": render_pdf(
                "borrower_agreement.html", borrower_agreement_context(session, facts, settings)
            )
        }
        for investment in facts.investments:
            investor = session.get_one(User, investment.investor_id)
            context = investment_agreement_context(facts, investment, investor, shares[investment.id], settings)
            drawn[f"investment:{investment.id}"] = render_pdf("investment_agreement.html", context)
    return {subject: hashlib.sha256(content).hexdigest() for subject, content in drawn.items()}


async def test_a_loan_repays_on_its_due_dates_while_its_agreements_wait_for_a_renderer(
    live_settings, dev_client, session_factory, seeded, task_queue
):
    """The agreements render beside the repayment (patch agreements-beside-repayment): with
    every renderer stuck from the payout on, the loan still collects each installment on its
    due date and pays its investors; a trade waits (AgreementsPending); the loan's workflow
    ends only once the agreements are registered, and they are, byte for byte, what the
    renderer would have drawn at the payout. Its history is saved (RECORD_HISTORIES)."""
    from activities.documents import DocumentActivities
    from documents.store import DocumentStore
    from workflows.loan import LoanWorkflow

    settings = live_settings
    renderer_free = threading.Event()
    at_payout: dict[str, str] = {}
    real = DocumentActivities(session_factory, DocumentStore(settings.documents_dir), settings)

    @activity.defn(name="generate_loan_agreements")
    def generate_loan_agreements(input: LoanAgreementsInput) -> LoanAgreementsResult:
        if not at_payout:  # (the first attempt, right after the payout)
            at_payout.update(_agreements_as_rendered_now(session_factory, settings, input.loan_id))
        while not renderer_free.wait(1):
            activity.heartbeat()
        return real.generate_loan_agreements(input)

    borrower = make_borrower(session_factory)
    investors = [make_investor(session_factory, "60000") for _ in range(2)]
    async with running_worker(dev_client, settings, session_factory, task_queue, stand_ins=[generate_loan_agreements]):
        try:
            loan = await start_loan(
                dev_client, session_factory, task_queue, borrower, "100000.00", 3, time_scale=MONTH_PER_4_SECONDS
            )
            await wait_for_status(loan.handle, "funding", timeout=60)
            for investor in investors:
                await invest(loan.handle, investor, "50000.00")
            give_money(session_factory, borrower, "20000")  # with the disbursed 97,000: every installment
            active = await wait_for_status(loan.handle, "active", timeout=60)
            assert active.agreements_pending

            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await loan.handle.execute_update(
                    LoanWorkflow.trade,
                    TradeRequest(
                        trade_id=uuid.uuid4(),
                        listing_id=uuid.uuid4(),
                        buyer_id=investors[0],
                        principal=D("1000.00"),
                        loan_id=loan.loan_id,
                    ),
                )
            assert isinstance(refused.value.cause, ApplicationError)
            assert refused.value.cause.type == AgreementsPending.failure_type

            # Every installment collected on its due date, the renderer stuck all along.
            repaid = await wait_for_status(loan.handle, "repaid", timeout=90)
            assert repaid.agreements_pending and not renderer_free.is_set()
            assert (await loan.handle.describe()).status == WorkflowExecutionStatus.RUNNING
            with session_factory() as session:
                rows = session.scalars(
                    select(RepaymentInstallment)
                    .where(RepaymentInstallment.loan_id == loan.loan_id)
                    .order_by(RepaymentInstallment.payment_num)
                ).all()
                assert [(r.status, r.late_fee_paid) for r in rows] == [("paid", D("0.00"))] * 3
            # never overdue: each collected when it fell due, and the investors paid
            assert all(i.status == "paid" and i.overdue_since is None for i in repaid.installments)
            assert all(balance_of(session_factory, i).available > D("60000.00") for i in investors)
            with session_factory() as session:
                assert (
                    session.scalar(select(func.count()).select_from(Document).where(Document.loan_id == loan.loan_id))
                    == 0
                )
        finally:
            renderer_free.set()
        final = await asyncio.wait_for(loan.handle.result(), 60)
    assert final.status == "repaid" and not final.agreements_pending
    with session_factory() as session:
        registered = {
            d.subject_key: d.sha256 for d in session.scalars(select(Document).where(Document.loan_id == loan.loan_id))
        }
        assert len(at_payout) == 3 and registered == at_payout
        assert_books_balance(session)
    await replay_and_maybe_record(loan.handle, "loan_repaid_while_its_agreements_waited")
