"""The loans' PDFs render on the documents' own task queue (worker.build_documents_worker), so
agreements waiting for a renderer never hold the activity slots that investments, scoring and
collections wait for. On one queue, with the two stuck agreements below, the third loan is never
even scored (checked on the code before the patch documents-own-queue).

Since the patch agreements-beside-repayment they render beside the repayment: a stuck or
refusing renderer holds no collection, a trade waits for them, and the loan's life ends only
once they are registered (the tests after the first)."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import uuid
from datetime import datetime
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select
from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from api.main import create_app
from domain.refusals import AgreementsRefused
from models.documents_io import LoanAgreementsInput, LoanAgreementsResult, documents_task_queue
from models.loan_workflow import LoanSnapshot, TradeRequest
from models.loans import RepaymentInstallment
from models.market import MarketTrade
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
    wait_for_agreements,
    wait_for_status,
    wait_read_side_status,
)
from workflows.loan import AGREEMENTS_RETRY, LoanWorkflow

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
        for loan in paid_out:  # (repaying all along) their agreements registered once the renderer is free
            await wait_for_agreements(env.client, loan.loan_id)
        for loan in (*paid_out, third):
            await loan.handle.terminate("test over")
    assert set(asked_on) == {documents_task_queue(task_queue)}


MONTH_PER_5_SECONDS = 2_592_000 // 5
MONTH_PER_30_MINUTES = 2_592_000 // 1800
MONTH_PER_10_SECONDS = 2_592_000 // 10


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


async def _list_5000_at_par(api: httpx.AsyncClient, settings, session_factory, loan_id: uuid.UUID, seller) -> str:
    """The seller lists 5,000.00 of its holding at par through the API, once the read side
    says the loan is active (what the market reads); the listing's id."""
    from tests.test_loan_api import bearer
    from tests.test_market import _holding

    await wait_read_side_status(session_factory, loan_id, "active")
    listed = await api.post(
        "/v1/market/listings",
        json={
            "investment_id": str(_holding(session_factory, str(loan_id), seller).id),
            "principal": "5000.00",
            "price_percent": "100.00",
        },
        headers=bearer(settings, seller, "investor"),
    )
    assert listed.status_code == 201, listed.text
    return listed.json()["id"]


def _stuck_renderer(session_factory, settings, calls: list[str], at_payout: dict[str, str]):
    """A stand-in for generate_loan_agreements that waits until its event is set, then
    renders and registers for real. Its first call notes each agreement's sha256 as drawn
    right after the payout."""
    from activities.documents import DocumentActivities
    from documents.store import DocumentStore

    free = threading.Event()
    real = DocumentActivities(session_factory, DocumentStore(settings.documents_dir), settings)

    @activity.defn(name="generate_loan_agreements")
    def generate_loan_agreements(input: LoanAgreementsInput) -> LoanAgreementsResult:
        if not calls:
            at_payout.update(_agreements_as_rendered_now(session_factory, settings, input.loan_id))
        calls.append(activity.info().workflow_run_id)
        while not free.wait(1):
            activity.heartbeat()
        return real.generate_loan_agreements(input)

    return generate_loan_agreements, free


def _documents_of(session_factory, loan_id: uuid.UUID) -> dict[str, str]:
    with session_factory() as session:
        return {d.subject_key: d.sha256 for d in session.scalars(select(Document).where(Document.loan_id == loan_id))}


async def test_a_loan_repays_while_its_agreements_wait_for_a_renderer(
    live_settings, dev_client, session_factory, seeded, task_queue, monkeypatch
):
    """The agreements render beside the repayment (patch agreements-beside-repayment): with
    every renderer stuck from the payout on, the loan collects every installment, never
    overdue, and pays its investors, continuing as new on the way (each run asks for the
    agreements again); a purchase on the market is refused (409 AgreementsPending, nothing
    moved); the loan's workflow ends only once the agreements are registered, and they are,
    byte for byte, what the renderer would have drawn at the payout. Its history is saved
    (RECORD_HISTORIES)."""
    import api.workflow_calls
    from tests.test_loan_api import bearer
    from tests.test_market import _tradeable_at_once

    settings = live_settings
    monkeypatch.setattr(api.workflow_calls, "AGREEMENTS_WAIT_SECONDS", 2.0)  # (the purchase's wait, below)
    calls: list[str] = []
    at_payout: dict[str, str] = {}
    stuck, renderer_free = _stuck_renderer(session_factory, settings, calls, at_payout)
    _tradeable_at_once(session_factory)
    borrower = make_borrower(session_factory)
    investors = [make_investor(session_factory, "60000") for _ in range(2)]
    buyer = make_investor(session_factory, "10000")
    async with (
        running_worker(dev_client, settings, session_factory, task_queue, stand_ins=[stuck]),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings)), base_url="http://api") as api,
    ):
        try:
            loan = await start_loan(
                dev_client,
                session_factory,
                task_queue,
                borrower,
                "100000.00",
                6,
                time_scale=MONTH_PER_5_SECONDS,
                history_events_per_run=60,  # (several runs)
            )
            latest = dev_client.get_workflow_handle(loan.handle.id, result_type=LoanSnapshot)
            await wait_for_status(latest, "funding", timeout=60)
            for investor in investors:
                await invest(latest, investor, "50000.00")
            give_money(session_factory, borrower, "20000")  # with the disbursed 97,000: every installment
            active = await wait_for_status(latest, "active", timeout=60)
            assert active.agreements_pending

            # A purchase waits for the agreements, then is refused: nothing moves.
            listing_id = await _list_5000_at_par(api, settings, session_factory, loan.loan_id, investors[0])
            bought = await api.post(
                f"/v1/market/listings/{listing_id}/purchase",
                json={},
                headers=bearer(settings, buyer, "investor"),
            )
            assert bought.status_code == 409, bought.text
            assert bought.json()["reason"] == "AgreementsPending" and "agreements" in bought.json()["detail"]
            assert balance_of(session_factory, buyer).available == D("10000.00")
            with session_factory() as session:
                assert session.scalars(select(MarketTrade).where(MarketTrade.loan_id == loan.loan_id)).all() == []

            # Every installment collected, the renderer stuck all along.
            repaid = await wait_for_status(latest, "repaid", timeout=90)
            assert (
                repaid.agreements_pending
                and not renderer_free.is_set()
                and _documents_of(session_factory, loan.loan_id) == {}
            )
            assert all(i.status == "paid" and i.overdue_since is None for i in repaid.installments)
            with session_factory() as session:
                rows = session.scalars(
                    select(RepaymentInstallment).where(RepaymentInstallment.loan_id == loan.loan_id)
                ).all()
                assert sorted((r.status, r.late_fee_paid) for r in rows) == [("paid", D("0.00"))] * 6
            assert all(balance_of(session_factory, i).available > D("60000.00") for i in investors)
            assert (await latest.describe()).run_id != loan.handle.first_execution_run_id  # it continued as new
            assert len(set(calls)) >= 2  # and a later run asked for the agreements again
        finally:
            renderer_free.set()
        final = await asyncio.wait_for(latest.result(), 60)
    assert final.status == "repaid" and not final.agreements_pending
    assert len(at_payout) == 3 and _documents_of(session_factory, loan.loan_id) == at_payout
    with session_factory() as session:
        assert_books_balance(session)
    await replay_and_maybe_record(loan.handle, "loan_repaid_while_its_agreements_waited")


async def test_a_purchase_sent_while_the_agreements_render_waits_for_them_and_settles(
    live_settings, dev_client, session_factory, seeded, task_queue, monkeypatch
):
    """The API sends a refused purchase again for a while (api/workflow_calls.py
    AGREEMENTS_WAIT_SECONDS): agreements registered meanwhile, it settles once, after them."""
    import api.workflow_calls
    from tests.test_loan_api import bearer
    from tests.test_market import _tradeable_at_once

    settings = live_settings
    monkeypatch.setattr(api.workflow_calls, "AGREEMENTS_WAIT_SECONDS", 60.0)  # (room for three real renders)
    calls: list[str] = []
    stuck, renderer_free = _stuck_renderer(session_factory, settings, calls, {})
    _tradeable_at_once(session_factory)
    borrower = make_borrower(session_factory)
    seller, other = make_investor(session_factory, "50000"), make_investor(session_factory, "50000")
    buyer = make_investor(session_factory, "10000")
    async with (
        running_worker(dev_client, settings, session_factory, task_queue, stand_ins=[stuck]),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings)), base_url="http://api") as api,
    ):
        try:
            loan = await start_loan(
                dev_client, session_factory, task_queue, borrower, "100000.00", 6, time_scale=MONTH_PER_10_SECONDS
            )
            await wait_for_status(loan.handle, "funding", timeout=60)
            for investor in (seller, other):
                await invest(loan.handle, investor, "50000.00")
            assert (await wait_for_status(loan.handle, "active", timeout=60)).agreements_pending
            listing_id = await _list_5000_at_par(api, settings, session_factory, loan.loan_id, seller)
            purchase = asyncio.create_task(
                api.post(
                    f"/v1/market/listings/{listing_id}/purchase",
                    json={},
                    headers=bearer(settings, buyer, "investor") | {"Idempotency-Key": "buy-once"},
                )
            )
            await asyncio.sleep(1.5)
            assert not purchase.done()  # waiting for the agreements
        finally:
            renderer_free.set()
        bought = await asyncio.wait_for(purchase, 60)
        assert bought.status_code == 201, bought.text
        assert not (await loan.handle.query(LoanWorkflow.snapshot)).agreements_pending
        await loan.handle.terminate("test over")
    with session_factory() as session:
        (trade,) = session.scalars(select(MarketTrade).where(MarketTrade.loan_id == loan.loan_id)).all()
        assert (trade.buyer_id, trade.principal) == (buyer, D("5000.00"))
        agreements = session.scalars(
            select(Document.created_at).where(
                Document.loan_id == loan.loan_id, Document.subject_key.not_like("trade:%")
            )
        ).all()
        assert len(agreements) == 3 and trade.traded_at >= max(agreements)  # settled after them
    # the loan's three agreements, then the trade's assignment agreement (seller's and buyer's copies)
    subjects = sorted(k.split(":")[0] for k in _documents_of(session_factory, loan.loan_id))
    assert subjects == ["investment", "investment", "loan", "trade", "trade"]


async def test_agreements_refused_for_good_are_asked_again_while_the_loan_repays(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    """A refusal for good of the agreements (here: a stand-in that says the loan's facts do
    not add up, once) neither fails the loan nor holds its collections: the first installment
    is collected before they are asked for again an hour later (a month is 30 minutes here),
    a trade meanwhile is refused (AgreementsRefused), and they are then registered and the
    loan repays. Its history is saved (RECORD_HISTORIES)."""
    from activities.documents import DocumentActivities
    from activities.errors import business_errors_are_final
    from core.errors import Conflict
    from documents.store import DocumentStore

    env = time_skipping_env
    real = DocumentActivities(session_factory, DocumentStore(settings.documents_dir), settings)
    calls: list[str] = []
    asked_again, go_on = threading.Event(), threading.Event()

    @activity.defn(name="generate_loan_agreements")
    @business_errors_are_final
    def generate_loan_agreements(input: LoanAgreementsInput) -> LoanAgreementsResult:
        calls.append(activity.info().workflow_run_id)
        if len(calls) == 1:
            raise Conflict("the loan's facts do not add up (a test's refusal)")
        asked_again.set()  # (time stands still on this server while an activity runs)
        assert go_on.wait(60), "the test never let the renderer go on"
        return real.generate_loan_agreements(input)

    borrower = make_borrower(session_factory)
    investors = [make_investor(session_factory, "60000") for _ in range(2)]
    async with running_worker(env.client, settings, session_factory, task_queue, stand_ins=[generate_loan_agreements]):
        try:
            loan = await start_loan(
                env.client, session_factory, task_queue, borrower, "100000.00", 3, time_scale=MONTH_PER_30_MINUTES
            )
            await wait_for_status(loan.handle, "funding")
            for investor in investors:
                await invest(loan.handle, investor, "50000.00")
            give_money(session_factory, borrower, "20000")
            # (this server skips time only while someone waits for a result)
            ending = asyncio.create_task(loan.handle.result())
            assert await asyncio.to_thread(asked_again.wait, 60)
            asked = await loan.handle.query(LoanWorkflow.snapshot)
            assert asked.status == "active" and asked.agreements_pending
            assert asked.installments[0].status == "paid"  # collected meanwhile: not held
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
            assert refused.value.cause.type == AgreementsRefused.failure_type
        finally:
            go_on.set()
        result = await asyncio.wait_for(ending, 60)
    assert result.status == "repaid" and not result.agreements_pending
    assert len(calls) == 2 and len(_documents_of(session_factory, loan.loan_id)) == 3
    # From the history: refused, then an installment collected, then asked again an hour later.
    events = (await loan.handle.fetch_history()).events
    scheduled: dict[int, str] = {}
    steps: list[tuple[str, str, datetime]] = []
    for event in events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[event.event_id] = name
            steps.append(("scheduled", name, event.event_time.ToDatetime()))
        for kind in ("completed", "failed"):
            field = f"activity_task_{kind}_event_attributes"
            if event.HasField(field):
                name = scheduled[getattr(event, field).scheduled_event_id]
                steps.append((kind, name, event.event_time.ToDatetime()))
    agreements = [(kind, at) for kind, name, at in steps if name == "generate_loan_agreements"]
    assert [kind for kind, _ in agreements] == ["scheduled", "failed", "scheduled", "completed"]
    failed_at, asked_again_at = agreements[1][1], agreements[2][1]
    assert asked_again_at - failed_at >= AGREEMENTS_RETRY
    collected = [at for kind, name, at in steps if (kind, name) == ("completed", "collect_installments")]
    assert any(failed_at < at < asked_again_at for at in collected)
    with session_factory() as session:
        assert_books_balance(session)
    await replay_and_maybe_record(loan.handle, "loan_repaid_after_its_agreements_were_refused")
