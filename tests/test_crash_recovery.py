"""A worker process killed with SIGKILL right after a money activity commits, on the real
dev server and PostgreSQL: the activity's short start-to-close timeout fires, a new worker
takes the retry, and the loan workflow itself (its query and its history, not the read side
the first attempt already wrote) moves on, with exactly one posting in the ledger."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select
from temporalio.client import WorkflowHandle

from models.ledger import LedgerTransaction
from models.loan_workflow import LoanSnapshot
from models.loans import LoanRequest, RepaymentInstallment
from tests.ledger_helpers import assert_books_balance
from tests.loan_helpers import balance_of, invest, make_borrower, make_investor, running_worker, start_loan
from tests.worker_process import worker_process
from workflows.loan import LoanWorkflow

D = Decimal
# Long enough that a first attempt on a loaded machine commits well within it (then dies);
# short enough that the test does not wait the production minute for Temporal to notice.
ATTEMPT_TIMEOUT_SECONDS = 12


def _transactions(session_factory, loan_id, kind: str) -> int:
    """The loan's ledger transactions of this kind (whatever their keys: a retry that posted
    under another key would show here as a second one)."""
    with session_factory() as session:
        return session.scalar(
            select(func.count())
            .select_from(LedgerTransaction)
            .where(LedgerTransaction.loan_id == loan_id, LedgerTransaction.kind == kind)
        )


async def _until(handle: WorkflowHandle, done, what: str, timeout: float = 120) -> LoanSnapshot:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        snapshot: LoanSnapshot = await handle.query(LoanWorkflow.snapshot)
        if done(snapshot):
            return snapshot
        assert loop.time() < deadline, f"the workflow never reached {what}: {snapshot.status}"
        await asyncio.sleep(0.1)


async def _attempts(handle: WorkflowHandle, activity_name: str) -> list[tuple[int, str]]:
    """Each time the history shows `activity_name` scheduled: the attempt that closed it, and how."""
    history = await handle.fetch_history()
    scheduled = {
        e.event_id
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == activity_name
    }
    started = {
        e.event_id: e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
        and e.activity_task_started_event_attributes.scheduled_event_id in scheduled
    }
    closed = []
    for event in history.events:
        if event.HasField("activity_task_completed_event_attributes"):
            attrs = event.activity_task_completed_event_attributes
            if attrs.scheduled_event_id in scheduled:
                closed.append((started[attrs.started_event_id], "completed"))
        if event.HasField("activity_task_failed_event_attributes"):
            attrs = event.activity_task_failed_event_attributes
            if attrs.scheduled_event_id in scheduled:
                closed.append((started[attrs.started_event_id], "failed"))
    return closed


@pytest.mark.parametrize("activity_name", ["disburse_loan", "collect_installments"])
async def test_worker_killed_right_after_a_money_activity_commits(
    activity_name, live_settings, dev_client, session_factory, seeded, task_queue, tmp_path
):
    settings = live_settings
    borrower = make_borrower(session_factory)
    investors = [make_investor(session_factory, "60000") for _ in range(2)]
    # Collection: the schedule starts a month ago (the loan's clock pinned there), so the first
    # installment falls due as soon as the loan is paid out, and the second a month later.
    origin = datetime.now(UTC) - relativedelta(months=1) if activity_name == "collect_installments" else None
    kind = "disbursement" if activity_name == "disburse_loan" else "installment_collection"
    log = tmp_path / "worker.log"

    with worker_process(settings, log, crash_after=activity_name) as doomed:
        loan = await start_loan(
            dev_client,
            session_factory,
            task_queue,
            borrower,
            "100000.00",
            3,
            search_attributes=True,
            clock_origin=origin,
            activity_timeout_seconds=ATTEMPT_TIMEOUT_SECONDS,
        )
        await _until(loan.handle, lambda s: s.status == "funding", "funding")
        for investor in investors:
            await invest(loan.handle, investor, "50000.00")
        returncode = await asyncio.to_thread(doomed.wait, 120)
    assert returncode == -signal.SIGKILL, log.read_text()[-2000:]
    crashed = re.search(rf"{activity_name} attempt (\d+) committed; SIGKILL", log.read_text())
    assert crashed, log.read_text()[-2000:]
    crashed_attempt = int(crashed.group(1))

    # The first attempt's transaction is in the ledger; Temporal never heard of it.
    assert _transactions(session_factory, loan.loan_id, kind) == 1
    pending = (await loan.handle.describe()).raw_description.pending_activities
    names = [p.activity_type.name for p in pending]
    # (and, after the payout, maybe the agreements: they render beside the repayment)
    beside = {"generate_loan_agreements"} if activity_name == "collect_installments" else set()
    assert names.count(activity_name) == 1 and set(names) <= {activity_name, *beside}, names

    async with running_worker(dev_client, settings, session_factory, task_queue):
        if activity_name == "disburse_loan":
            snapshot = await _until(loan.handle, lambda s: s.status == "active", "active")
        else:
            snapshot = await _until(loan.handle, lambda s: s.installments[0].status == "paid", "installment 1 paid")
        closed = await _attempts(loan.handle, activity_name)
        await loan.handle.terminate("test over")

    # The retry (the attempt after the crashed one, once its timeout fired) found the crashed
    # attempt's work: one completion, one ledger transaction, nothing moved twice.
    assert closed == [(crashed_attempt + 1, "completed")]
    assert _transactions(session_factory, loan.loan_id, kind) == 1
    assert _transactions(session_factory, loan.loan_id, "disbursement") == 1
    with session_factory() as session:
        assert_books_balance(session)
        loan_row = session.get(LoanRequest, loan.loan_id)
        assert loan_row.status == snapshot.status == "active"
        rows = session.scalars(
            select(RepaymentInstallment)
            .where(RepaymentInstallment.loan_id == loan.loan_id)
            .order_by(RepaymentInstallment.payment_num)
        ).all()
    # 100,000 less the 1% fee and the 2% reserve contribution, paid out once
    paid_out = D("97000.00")
    if activity_name == "disburse_loan":
        assert balance_of(session_factory, borrower).available == paid_out
        assert all(balance_of(session_factory, i).balance == D("10000.00") for i in investors)
        assert [r.status for r in rows] == ["pending"] * 3
        return
    first = snapshot.installments[0]
    owed = first.principal + first.interest
    # workflow state = ledger = read side: installment 1 taken once, in full, on its due date
    assert (first.paid_principal, first.paid_interest, first.paid_fee) == (first.principal, first.interest, 0)
    assert [i.status for i in snapshot.installments] == ["paid", "pending", "pending"]
    assert balance_of(session_factory, borrower).available == paid_out - owed
    assert sum((balance_of(session_factory, i).balance for i in investors), D(0)) == D("20000.00") + owed
    assert (rows[0].status, rows[0].paid_principal, rows[0].paid_interest) == ("paid", first.principal, first.interest)
    assert [r.status for r in rows[1:]] == ["pending", "pending"]


def test_the_worker_process_is_stopped_by_its_own_pid(live_settings, tmp_path):
    """The helper the crash tests use leaves no process behind, however the block ends."""
    log = tmp_path / "worker.log"
    with pytest.raises(RuntimeError):
        with worker_process(live_settings, log) as process:
            pid = process.pid
            raise RuntimeError("the test failed in the middle")
    assert process.poll() is not None  # stopped and reaped: the pid no longer exists
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
