"""Starts the Temporal worker: the loan platform's workflows and activities on TASK_QUEUE,
and its documents (the PDFs of loan and assignment agreements) on TASK_QUEUE-documents.

Run it as many times as you like on as many machines as you like: every worker polls the
same task queues (this is how the platform grows past one machine), and every worker drains
the outbox (claims are leased, SKIP LOCKED: two workers do not claim the same message).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)
from temporalio.worker import Worker

from activities.auto_invest import AutoInvestActivities
from activities.documents import DocumentActivities
from activities.ledger_checks import LedgerCheckActivities
from activities.loans import LoanActivities
from activities.plans import PlanActivities
from core.db import make_engine, session_factory_for
from core.settings import Settings, get_settings
from core.temporal_client import connect_temporal
from core.workflow_code_sharing import share_compiled_workflow_code
from core.workflow_runner import workflow_runner
from documents.render import render_in_processes
from documents.store import DocumentStore
from models.auto_invest_io import AutoInvestInput
from models.documents_io import InvestorStatementsInput, documents_task_queue
from models.ledger_reports import ReconciliationInput
from outbox.delivery import drain_forever
from workflows.auto_invest import AUTO_INVEST_SCHEDULE_ID, AutoInvestWorkflow
from workflows.award_event import AwardEventWorkflow
from workflows.investor_statements import STATEMENTS_SCHEDULE_ID, InvestorStatementsWorkflow
from workflows.ledger_reconciliation import RECONCILIATION_SCHEDULE_ID, LedgerReconciliationWorkflow
from workflows.loan import LoanWorkflow
from workflows.purchase_plan import PurchasePlanWorkflow

log = logging.getLogger("worker")

# Sync (blocking DB) activities run on this many threads; keep it at or below the DB pool.
ACTIVITY_THREADS = 16


def document_activity_slots(settings: Settings) -> int:
    """Document activities taken at once from the documents' task queue, each on a thread of
    its own: one waiting on each renderer (WORKER_DOCUMENT_RENDERERS), and one reading the next
    loan's facts meanwhile. They used to share the ACTIVITY_THREADS slots, where agreements
    waiting on a renderer could hold them all: tests/test_documents_queue.py shows a loan then
    never scored."""
    return settings.WORKER_DOCUMENT_RENDERERS + 1


def _with_stand_ins(
    activities: list[Callable[..., Any]], stand_ins: Sequence[Callable[..., Any]]
) -> list[Callable[..., Any]]:
    replaced = {stand_in.__name__: stand_in for stand_in in stand_ins}
    unknown = set(replaced) - {activity.__name__ for activity in activities}
    if unknown:
        raise ValueError(f"no activity to stand in for: {', '.join(sorted(unknown))}")
    return [replaced.get(activity.__name__, activity) for activity in activities]


def build_worker(
    client: Client,
    settings: Settings,
    session_factory: sessionmaker[Session],
    executor: ThreadPoolExecutor,
    task_queue: str | None = None,
    stand_ins: Sequence[Callable[..., Any]] = (),
) -> Worker:
    """The platform's worker. `stand_ins` (tests only): activities that replace the real ones
    of the same name."""
    # Each cached workflow's sandbox re-imports its module: they share the compiled code.
    share_compiled_workflow_code()
    ledger_checks = LedgerCheckActivities(session_factory)
    loans = LoanActivities(session_factory)
    documents = DocumentActivities(session_factory, DocumentStore(settings.documents_dir), settings)
    auto_invest = AutoInvestActivities(session_factory, client)
    plans = PlanActivities(session_factory)
    # (The loans' documents are here too: a run of a loan that took no patch
    # documents-own-queue asks for them on this queue. They may go once no such run is open.)
    return Worker(
        client,
        task_queue=task_queue or settings.TASK_QUEUE,
        workflows=[
            LedgerReconciliationWorkflow,
            LoanWorkflow,
            InvestorStatementsWorkflow,
            AutoInvestWorkflow,
            PurchasePlanWorkflow,
            AwardEventWorkflow,
        ],
        activities=_with_stand_ins(
            [
                auto_invest.plan_auto_investments,
                auto_invest.place_auto_investments,
                ledger_checks.check_trial_balance,
                *_loan_documents(documents),
                documents.generate_investor_statements,
                loans.register_loan_request,
                loans.record_loan_status,
                loans.score_loan_request,
                loans.reserve_investment,
                loans.release_investments,
                loans.disburse_loan,
                loans.collect_installments,
                loans.mark_installment_overdue,
                loans.default_loan,
                loans.settle_trade,
                loans.complete_loan,
                plans.start_plan,
                plans.collect_contribution,
                plans.mark_contribution_overdue,
                plans.cancel_plan,
                plans.award_plan,
                plans.hold_award_event,
            ],
            stand_ins,
        ),
        activity_executor=executor,
        max_concurrent_activities=ACTIVITY_THREADS,
        max_cached_workflows=settings.WORKER_MAX_CACHED_WORKFLOWS,
        # The sandbox, not asked for per-payload contexts the platform's converter ignores.
        workflow_runner=workflow_runner(client.data_converter),
        # Let a database transaction in flight finish rather than interrupt it on shutdown.
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


def _loan_documents(documents: DocumentActivities) -> list[Callable[..., Any]]:
    """The loans' PDF activities: on the documents' task queue since patch documents-own-queue."""
    return [documents.generate_loan_agreements, documents.register_trade_documents]


def build_documents_worker(
    client: Client,
    settings: Settings,
    session_factory: sessionmaker[Session],
    executor: ThreadPoolExecutor,
    task_queue: str | None = None,
    stand_ins: Sequence[Callable[..., Any]] = (),
) -> Worker:
    """The documents' worker: the loans' PDFs on their own task queue and slots, so that
    however many agreements wait for a renderer, no activity of the platform's queue waits for
    a slot behind them. (What waits for a PDF still waits for it: a loan's trades and the end of
    its workflow wait for its agreements, rendering beside its repayment; a trade's update
    answers once its assignment agreement is registered.)
    `stand_ins` as build_worker's (only those of the documents' activities apply here)."""
    documents = DocumentActivities(session_factory, DocumentStore(settings.documents_dir), settings)
    activities = _loan_documents(documents)
    names = {activity.__name__ for activity in activities}
    return Worker(
        client,
        task_queue=documents_task_queue(task_queue or settings.TASK_QUEUE),
        activities=_with_stand_ins(activities, [s for s in stand_ins if s.__name__ in names]),
        activity_executor=executor,
        max_concurrent_activities=document_activity_slots(settings),
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


@asynccontextmanager
async def platform_workers(
    client: Client,
    settings: Settings,
    session_factory: sessionmaker[Session],
    task_queue: str | None = None,
    stand_ins: Sequence[Callable[..., Any]] = (),
) -> AsyncIterator[Worker]:
    """The platform's worker and the documents' worker, running until the block ends; yields
    the platform's."""
    with (
        ThreadPoolExecutor(max_workers=ACTIVITY_THREADS, thread_name_prefix="activity") as executor,
        ThreadPoolExecutor(
            max_workers=document_activity_slots(settings), thread_name_prefix="documents"
        ) as documents_executor,
    ):
        worker = build_worker(client, settings, session_factory, executor, task_queue, stand_ins)
        documents_worker = build_documents_worker(
            client, settings, session_factory, documents_executor, task_queue, stand_ins
        )
        async with worker, documents_worker:
            try:
                yield worker
            finally:
                # Both at once: one after the other, stopping could take two graceful timeouts,
                # and the platform's worker would take new activities while the other stopped.
                await asyncio.gather(worker.shutdown(), documents_worker.shutdown())


def platform_schedules(settings: Settings) -> dict[str, Schedule]:
    """The platform's periodic work, by Schedule id. Overlap: skip (a run still going is
    not doubled)."""

    def start(workflow_run, arg, run_id: str) -> ScheduleActionStartWorkflow:
        return ScheduleActionStartWorkflow(workflow_run, arg, id=run_id, task_queue=settings.TASK_QUEUE)

    return {
        RECONCILIATION_SCHEDULE_ID: Schedule(
            action=start(
                LedgerReconciliationWorkflow.run, ReconciliationInput(reason="schedule"), "ledger-reconciliation-run"
            ),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))]),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(minutes=10)),
        ),
        STATEMENTS_SCHEDULE_ID: Schedule(
            action=start(InvestorStatementsWorkflow.run, InvestorStatementsInput(), "investor-statements-run"),
            # 02:00 UTC on the first of each month: the month before has ended everywhere.
            spec=ScheduleSpec(cron_expressions=["0 2 1 * *"]),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(days=1)),
        ),
        AUTO_INVEST_SCHEDULE_ID: Schedule(
            action=start(AutoInvestWorkflow.run, AutoInvestInput(reason="schedule"), "auto-invest-run"),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(minutes=15))]),
            # A run missed while the platform was down is not worth more than one late run.
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(minutes=5)),
        ),
    }


async def ensure_schedules(client: Client, settings: Settings) -> None:
    """Creates the platform's Schedules if they do not exist yet (idempotent)."""
    for schedule_id, schedule in platform_schedules(settings).items():
        try:
            await client.create_schedule(schedule_id, schedule)
            log.info("created schedule %s", schedule_id)
        except ScheduleAlreadyRunningError:
            pass


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    settings = get_settings()
    engine = make_engine(
        settings.DATABASE_URL, max(settings.DB_POOL_SIZE, ACTIVITY_THREADS + document_activity_slots(settings))
    )
    session_factory = session_factory_for(engine, settings.DB_IDLE_IN_TRANSACTION_SECONDS)
    client = await connect_temporal(settings)
    await ensure_schedules(client, settings)
    render_in_processes(settings.WORKER_DOCUMENT_RENDERERS)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with platform_workers(client, settings, session_factory):
        log.info(
            "worker polling task queues %r and %r on %s",
            settings.TASK_QUEUE,
            documents_task_queue(settings.TASK_QUEUE),
            settings.temporal_address,
        )
        # Messages to Temporal written while it was unreachable (loans to start, loans
        # to wake): delivered from here, every few seconds, until they arrive.
        outbox = asyncio.create_task(drain_forever(client, session_factory, stop))
        await stop.wait()
        log.info("stopping: finishing activities in flight")
        await outbox
    engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
