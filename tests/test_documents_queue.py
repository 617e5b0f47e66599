"""The loans' PDFs render on the documents' own task queue (worker.build_documents_worker), so
agreements waiting for a renderer never hold the activity slots that investments, scoring and
collections wait for. On one queue, with the two stuck agreements below, the third loan is never
even scored (checked on the code before the patch documents-own-queue)."""

from __future__ import annotations

import asyncio
import threading

from temporalio import activity

from models.documents_io import LoanAgreementsInput, LoanAgreementsResult, documents_task_queue
from tests.loan_helpers import invest, make_borrower, make_investor, running_worker, start_loan, wait_for_status


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
