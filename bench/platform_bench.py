"""The whole platform under load, on one machine: the real Temporal dev server, an embedded
PostgreSQL (fsync on), the worker and the API as their own processes, as `make run` starts
them.

- lifecycle: N loans x M investors x T monthly installments through whole lives on the
  sandbox clock (a month per second), beside two floors measured in the same run: the
  Temporal floor (a bare workflow with the same timers and as many trivial activities) and
  the database floor (the same reservations, disbursement, collections and distributions
  done by a plain loop of database transactions, no Temporal: the seed's Celery design);
- due-date burst: K active loans whose first installments fall due at the same instant;
- funding burst: 200 investors investing in one loan at once through the API;
- worker memory with many open loans waiting on timers.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity, workflow
from temporalio.client import Client, ScheduleActionStartWorkflow
from temporalio.common import RetryPolicy
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from bench import throwaway_secrets
from core.db import make_engine, unit_of_work
from core.migrate import upgrade_to_head
from core.security import issue_access_token
from core.settings import Settings
from core.temporal_client import connect_temporal
from domain.allocation import split_pro_rata
from domain.calendar import day_of, day_start
from ledger.accounts import open_wallet, platform_account, wallet_accounts, wallet_of_user
from ledger.postings import Leg, merge_legs, post_transaction
from ledger.wallets import reserve
from loans.requests import create_loan_request, workflow_input
from models.ledger import LedgerAccount, LedgerTransaction
from models.loan_workflow import InvestmentRequest
from models.loans import LoanRequest, RepaymentInstallment
from models.records import Document
from models.users import BorrowerProfile, User
from runner.ports import die_with_parent, free_port, stop_process, wait_for_port
from runner.postgres import EmbeddedPostgres
from runner.seed import seed
from runner.temporal import TemporalDevServer, register_search_attributes
from worker import platform_schedules
from workflows.auto_invest import AUTO_INVEST_SCHEDULE_ID
from workflows.ledger_reconciliation import RECONCILIATION_SCHEDULE_ID
from workflows.loan import LoanWorkflow

D = Decimal
PROJECT_ROOT = Path(__file__).resolve().parent.parent
MONTH_PER_SECOND = 2592000
# Whole lives run a month per 10 s: at a month per second, a loan whose collection waits
# 3 s behind other loans' work (agreements are CPU) is 90 days late (it once defaulted; on
# the borrower's time it no longer does, but its collections come together). The floors
# use the same 10-s months.
LIFECYCLE_SCALE = MONTH_PER_SECOND // 10
MONTH_SECONDS = 10
LOAN_AMOUNT = D("100000.00")
DOCUMENT_RENDERERS = Settings.model_fields["WORKER_DOCUMENT_RENDERERS"].default
CACHED_WORKFLOWS = Settings.model_fields["WORKER_MAX_CACHED_WORKFLOWS"].default


@dataclass
class Platform:
    settings: Settings
    env: dict[str, str]
    client: Client
    factory: sessionmaker[Session]
    worker: subprocess.Popen  # (the first, when there are several)
    api_url: str | None = None
    processes: list[subprocess.Popen] = field(default_factory=list)


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    out = log.open("ab")
    return subprocess.Popen(
        args, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent()
    )


@asynccontextmanager
async def platform(tmp: Path, *, api: bool = False, workers: int = 1):
    """PostgreSQL, Temporal, `workers` worker processes on the same task queues (and the API)
    for one benchmark; all stopped after, each by its own pid."""
    postgres = EmbeddedPostgres(tmp / "pg", free_port(), password=throwaway_secrets.POSTGRES_PASSWORD, durable=True)
    postgres.start()
    temporal = None
    processes: list[subprocess.Popen] = []
    engine = None
    try:
        url = postgres.create_database("platform")
        upgrade_to_head(url)
        port = free_port()
        temporal = TemporalDevServer(tmp / "temporal", port, free_port(), persistent=False)
        temporal.start()
        env = {
            **os.environ,
            "ENVIRONMENT": "dev",
            **throwaway_secrets.ENVIRONMENT,
            "DATABASE_URL": url,
            "TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
            "TASK_QUEUE": "loans",
            "LOAN_TIME_SCALE": str(MONTH_PER_SECOND),
            "DATA_DIR": str(tmp / "data"),
            "DB_POOL_SIZE": "20",
            # the defaults, whatever the developer's environment or .env says (the notes print them)
            "WORKER_DOCUMENT_RENDERERS": str(DOCUMENT_RENDERERS),
            "WORKER_MAX_CACHED_WORKFLOWS": str(CACHED_WORKFLOWS),
        }
        settings = Settings(
            _env_file=None,
            ENVIRONMENT="dev",
            **throwaway_secrets.SETTINGS,
            DATABASE_URL=url,
            TEMPORAL_ADDRESS=f"127.0.0.1:{port}",
            TASK_QUEUE="loans",
            LOAN_TIME_SCALE=MONTH_PER_SECOND,
            DATA_DIR=tmp / "data",
        )
        engine = make_engine(url, 20)
        factory = sessionmaker(bind=engine, expire_on_commit=False)
        with unit_of_work(factory) as session:
            seed(session, settings)
        client = await connect_temporal(settings)
        await register_search_attributes(client, settings.TEMPORAL_NAMESPACE)
        for n in range(workers):
            processes.append(_spawn([sys.executable, "worker.py"], env, tmp / f"worker-{n}.log"))
        worker = processes[0]
        api_url = None
        if api:
            api_port = free_port()
            processes.append(
                _spawn(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "api.main:app_factory",
                        "--factory",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(api_port),
                        "--log-level",
                        "warning",
                    ],
                    env,
                    tmp / "api.log",
                )
            )
            if not wait_for_port(api_port, 60):
                raise RuntimeError("the API did not start")
            api_url = f"http://127.0.0.1:{api_port}"
        await asyncio.sleep(2)  # the worker connects and polls
        yield Platform(settings, env, client, factory, worker, api_url, processes)
    finally:
        import signal

        for proc in reversed(processes):
            stop_process(proc, signal.SIGTERM)
        if engine is not None:
            engine.dispose()
        if temporal is not None:
            temporal.stop()
        postgres.stop()


# -- people and loans ------------------------------------------------------------------------
def _user(session: Session, role: str) -> User:
    user = User(email=f"{role}-{uuid.uuid4().hex[:12]}@bench.example", password_hash="x", role=role)
    session.add(user)
    session.flush()
    open_wallet(session, user.id, role)
    return user


def _fund(session: Session, user_ids: list[uuid.UUID], amount: Decimal, key: str) -> None:
    legs = [Leg(wallet_accounts(session, wallet_of_user(session, u).id)[0].id, amount) for u in user_ids]
    legs.append(Leg(platform_account(session, "nominal").id, -amount * len(user_ids)))
    post_transaction(session, key=key, kind="deposit", legs=legs)


def make_people(
    factory, borrowers: int, investors: int, borrower_money: Decimal, investor_money: Decimal
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    with unit_of_work(factory) as session:
        b = [_user(session, "borrower") for _ in range(borrowers)]
        for user in b:
            session.add(
                BorrowerProfile(
                    user_id=user.id,
                    monthly_income=D("300000"),
                    monthly_obligations=D("0"),
                    employment_months=60,
                    updated_at=datetime.now(UTC),
                )
            )
        i = [_user(session, "investor") for _ in range(investors)]
        if borrowers and borrower_money:
            _fund(session, [u.id for u in b], borrower_money, f"bench:borrowers:{uuid.uuid4()}")
        if investors:
            _fund(session, [u.id for u in i], investor_money, f"bench:investors:{uuid.uuid4()}")
        return [u.id for u in b], [u.id for u in i]


async def start_loans(
    p: Platform, borrowers: list[uuid.UUID], term: int, *, amount: Decimal = LOAN_AMOUNT, **overrides
) -> list[tuple[uuid.UUID, str]]:
    def prepare(borrower):
        with unit_of_work(p.factory) as session:
            loan, _ = create_loan_request(
                session,
                borrower,
                product_code="standard",
                amount=amount,
                term_months=term,
                purpose="bench",
                simulation_id=None,
                client_key=None,
            )
            return (
                loan.id,
                loan.workflow_id,
                workflow_input(session, loan, MONTH_PER_SECOND).model_copy(update=overrides),
            )

    gate = asyncio.Semaphore(16)

    async def one(borrower):
        async with gate:
            loan_id, workflow_id, wf_input = await asyncio.to_thread(prepare, borrower)
            await p.client.start_workflow(LoanWorkflow.run, wf_input, id=workflow_id, task_queue="loans")
            return loan_id, workflow_id

    return list(await asyncio.gather(*(one(b) for b in borrowers)))


def count_status(p: Platform, loan_ids: list[uuid.UUID], statuses: tuple[str, ...]) -> int:
    with p.factory() as session:
        return session.scalar(
            select(func.count())
            .select_from(LoanRequest)
            .where(LoanRequest.id.in_(loan_ids), LoanRequest.status.in_(statuses))
        )


async def wait_status(p: Platform, loan_ids: list[uuid.UUID], statuses: tuple[str, ...], timeout: float) -> float:
    started = time.perf_counter()
    while count_status(p, loan_ids, statuses) < len(loan_ids):
        if time.perf_counter() - started > timeout:
            raise RuntimeError(
                f"only {count_status(p, loan_ids, statuses)} of {len(loan_ids)} loans reached "
                f"{statuses} in {timeout:.0f} s"
            )
        await asyncio.sleep(0.1)
    return time.perf_counter()


async def wait_documents(p: Platform, loan_ids: list[uuid.UUID], count: int, timeout: float) -> float:
    """Until the loans' documents registered number `count` (their agreements)."""
    started = time.perf_counter()

    def registered() -> int:
        with p.factory() as session:
            return session.scalar(select(func.count()).select_from(Document).where(Document.loan_id.in_(loan_ids))) or 0

    while registered() < count:
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"only {registered()} of {count} agreements registered in {timeout:.0f} s")
        await asyncio.sleep(0.1)
    return time.perf_counter()


async def invest_all(
    p: Platform, loans: list[tuple[uuid.UUID, str]], investors: list[uuid.UUID], per_loan: int
) -> None:
    share = (LOAN_AMOUNT / per_loan).quantize(D("0.01"))
    gate = asyncio.Semaphore(32)

    async def one(n: int, workflow_id: str, investor: uuid.UUID):
        async with gate:
            investment_id = uuid.uuid4()
            for attempt in range(50):
                try:
                    return await p.client.get_workflow_handle(workflow_id).execute_update(
                        LoanWorkflow.invest,
                        InvestmentRequest(
                            investment_id=investment_id,
                            investor_id=investor,
                            amount=share,
                            loan_id=uuid.UUID(workflow_id.removeprefix("loan-")),
                        ),
                        id=f"investment-{investment_id}",
                    )
                except Exception:  # the server's in-flight limit: the same update id again
                    if attempt == 49:
                        raise
                    await asyncio.sleep(0.2)

    await asyncio.gather(
        *(
            one(n, wid, investors[(n * per_loan + k) % len(investors)])
            for n, (_, wid) in enumerate(loans)
            for k in range(per_loan)
        )
    )


async def history_stats(p: Platform, workflow_ids: list[str]) -> tuple[float, float, float]:
    """Per workflow, on average: history events, activities scheduled, and events from the
    disbursement on (the repayment life, which must not grow with the investors)."""
    events = activities = after = 0
    for workflow_id in workflow_ids:
        disbursing = False
        async for event in p.client.get_workflow_handle(workflow_id).fetch_history_events():
            events += 1
            if event.WhichOneof("attributes") == "activity_task_scheduled_event_attributes":
                activities += 1
                disbursing = disbursing or (
                    event.activity_task_scheduled_event_attributes.activity_type.name == "disburse_loan"
                )
            after += disbursing
    n = len(workflow_ids)
    return events / n, activities / n, after / n


# -- lifecycle and its floors ------------------------------------------------------------------
@dataclass
class LifecycleRow:
    name: str
    loans: int
    investors: int
    installments: int
    seconds: float
    events_per_loan: float | None = None
    ledger_tx_per_loan: float | None = None
    events_after_funding: float | None = None
    # Seconds from the start until every loan was open for funding, every investment taken,
    # every loan repaying (paid out), every agreement registered (they render beside the
    # repayment): where a lifecycle's time beyond its timers goes.
    phases: tuple[float, float, float, float] | None = None

    @property
    def loans_per_minute(self) -> float:
        return self.loans / self.seconds * 60


async def lifecycle(tmp: Path, loans: int, per_loan: int, term: int, workers: int = 1) -> tuple[LifecycleRow, float]:
    async with platform(tmp, workers=workers) as p:
        # borrowers hold enough to repay (interest at the dearest rate, with room)
        borrowers, investors = make_people(p.factory, loans, max(per_loan * 4, 20), D("30000.00"), LOAN_AMOUNT * loans)
        started = time.perf_counter()
        started_loans = await start_loans(p, borrowers, term, time_scale=LIFECYCLE_SCALE)
        ids = [loan_id for loan_id, _ in started_loans]
        open_for_funding = await wait_status(p, ids, ("funding",), 600)
        await invest_all(p, started_loans, investors, per_loan)
        invested = time.perf_counter()
        repaying = await wait_status(p, ids, ("active", "repaid", "defaulted"), 1800)
        agreements = await wait_documents(p, ids, loans * (per_loan + 1), 1800)
        finished = await wait_status(p, ids, ("repaid", "defaulted"), 1800)
        repaid = count_status(p, ids, ("repaid",))
        if repaid != loans:
            raise RuntimeError(f"{loans - repaid} of {loans} loans defaulted: the platform fell behind the clock")
        sample = [wid for _, wid in started_loans[:10]]
        events, activities, after = await history_stats(p, sample)
        with p.factory() as session:
            ledger = session.scalar(
                select(func.count()).select_from(LedgerTransaction).where(LedgerTransaction.loan_id.in_(ids))
            )
    return LifecycleRow(
        f"loan lifecycle, {per_loan} investors each" + (f", {workers} worker processes" if workers > 1 else ""),
        loans,
        per_loan,
        term,
        finished - started,
        events,
        ledger / loans,
        after,
        (open_for_funding - started, invested - started, repaying - started, agreements - started),
    ), activities


@workflow.defn(name="FloorLoanWorkflow", sandboxed=False)
class FloorLoanWorkflow:
    """The Temporal floor: the loan's timers and as many activities, doing nothing."""

    @workflow.run
    async def run(self, shape: list[int]) -> None:
        months, activities = shape
        for _ in range(activities - months):
            await workflow.execute_activity(
                "noop", start_to_close_timeout=timedelta(seconds=30), retry_policy=RetryPolicy(maximum_attempts=3)
            )
        for _ in range(months):
            await workflow.sleep(timedelta(seconds=MONTH_SECONDS))  # a month at the lifecycle's scale
            await workflow.execute_activity(
                "noop", start_to_close_timeout=timedelta(seconds=30), retry_policy=RetryPolicy(maximum_attempts=3)
            )


@activity.defn(name="noop")
async def noop() -> None:
    return None


async def temporal_floor(tmp: Path, loans: int, months: int, activities: int) -> LifecycleRow:
    async with platform(tmp) as p:
        async with Worker(p.client, task_queue="floor", workflows=[FloorLoanWorkflow], activities=[noop]):
            started = time.perf_counter()
            handles = [
                await p.client.start_workflow(
                    FloorLoanWorkflow.run,
                    [months, round(activities)],
                    id=f"floor-{n}-{uuid.uuid4()}",
                    task_queue="floor",
                )
                for n in range(loans)
            ]
            await asyncio.gather(*(h.result() for h in handles))
            elapsed = time.perf_counter() - started
            events, _, _ = await history_stats(p, [h.id for h in handles[:10]])
    return LifecycleRow("Temporal floor: same timers, as many no-op activities", loans, 0, months, elapsed, events)


def database_floor(tmp: Path, loans: int, per_loan: int, term: int) -> LifecycleRow:
    """The same money work as the lifecycle, by a plain loop (8 threads) of database
    transactions: reservations, disbursement, each installment collected and distributed."""
    postgres = EmbeddedPostgres(tmp / "pg", free_port(), password=throwaway_secrets.POSTGRES_PASSWORD, durable=True)
    postgres.start()
    try:
        return _database_floor(postgres, loans, per_loan, term)
    finally:
        postgres.stop()


def _database_floor(postgres: EmbeddedPostgres, loans: int, per_loan: int, term: int) -> LifecycleRow:
    from concurrent.futures import ThreadPoolExecutor

    from domain.schedule import build_schedule

    url = postgres.create_database("floor")
    upgrade_to_head(url)
    engine = make_engine(url, 10)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    with unit_of_work(factory) as session:
        seed(session, Settings(_env_file=None, DATABASE_URL=url, **throwaway_secrets.SETTINGS))
    borrowers, investors = make_people(factory, loans, max(per_loan * 4, 20), D("30000.00"), LOAN_AMOUNT * loans)
    share = (LOAN_AMOUNT / per_loan).quantize(D("0.01"))
    schedule = build_schedule(LOAN_AMOUNT, D("14.00"), term, date.today(), "annuity", 0).installments

    def one_loan(n: int) -> None:
        borrower = borrowers[n]
        lenders = [investors[(n * per_loan + k) % len(investors)] for k in range(per_loan)]
        with unit_of_work(factory) as session:
            loan, _ = create_loan_request(
                session,
                borrower,
                product_code="standard",
                amount=LOAN_AMOUNT,
                term_months=term,
                purpose="floor",
                simulation_id=None,
                client_key=None,
            )
            loan_id = loan.id
        for k, lender in enumerate(lenders):
            with unit_of_work(factory) as session:
                reserve(
                    session,
                    wallet_of_user(session, lender).id,
                    share,
                    key=f"floor:{loan_id}:{k}:reserve",
                    loan_id=loan_id,
                )
        with unit_of_work(factory) as session:
            legs = [Leg(wallet_accounts(session, wallet_of_user(session, u).id)[1].id, -share) for u in lenders]
            legs += [
                Leg(wallet_accounts(session, wallet_of_user(session, borrower).id)[0].id, D("97000.00")),
                Leg(platform_account(session, "platform_fees").id, D("1000.00")),
                Leg(platform_account(session, "reserve_fund").id, D("2000.00")),
            ]
            post_transaction(
                session, key=f"floor:{loan_id}:disburse", kind="disbursement", loan_id=loan_id, legs=merge_legs(legs)
            )
            for item in schedule:
                session.add(
                    RepaymentInstallment(
                        loan_id=loan_id,
                        payment_num=item.payment_num,
                        due_date=item.due_date,
                        principal=item.principal,
                        interest=item.interest,
                        status="pending",
                    )
                )
        weights = {u: share for u in lenders}
        for item in schedule:
            with unit_of_work(factory) as session:
                total = item.principal + item.interest
                legs = [Leg(wallet_accounts(session, wallet_of_user(session, borrower).id)[0].id, -total)]
                for lender, part in split_pro_rata(total, weights).items():
                    legs.append(Leg(wallet_accounts(session, wallet_of_user(session, lender).id)[0].id, part))
                post_transaction(
                    session,
                    key=f"floor:{loan_id}:collection:{item.payment_num}",
                    kind="installment_collection",
                    loan_id=loan_id,
                    legs=merge_legs(legs),
                )
                row = session.scalars(
                    select(RepaymentInstallment)
                    .where(
                        RepaymentInstallment.loan_id == loan_id, RepaymentInstallment.payment_num == item.payment_num
                    )
                    .with_for_update()
                ).one()
                row.paid_principal, row.paid_interest, row.status = item.principal, item.interest, "paid"

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one_loan, range(loans)))
    elapsed = time.perf_counter() - started
    engine.dispose()
    return LifecycleRow(
        "database floor: the same money work, plain transactions, 8 threads", loans, per_loan, term, elapsed
    )


# -- bursts ----------------------------------------------------------------------------------------
@dataclass
class BurstRow:
    name: str
    count: int
    seconds: float
    unit: str

    @property
    def rate(self) -> float:
        return self.count / self.seconds


async def due_date_burst(tmp: Path, loans: int, lead_seconds: float) -> tuple[BurstRow, BurstRow]:
    """K loans on one pinned sandbox clock: their first installments fall due at the same
    real instant. Time from that instant until every one is collected and distributed."""
    async with platform(tmp) as p:
        borrowers, investors = make_people(p.factory, loans, 40, D("30000.00"), LOAN_AMOUNT * loans / 20)
        origin = datetime.now(UTC)
        # The loans' first due day begins in the platform's time zone (the loans' days), a month
        # after the day their clock starts on there: from 21:00 UTC that is already tomorrow
        # in Moscow. (Counted in UTC, the instant was up to a day of loan time off.)
        zone = p.settings.PLATFORM_TIME_ZONE
        first_due = day_start(day_of(origin, zone) + relativedelta(months=1), zone)
        scale = int((first_due - origin).total_seconds() / lead_seconds)
        due_at = time.perf_counter() + (first_due - origin).total_seconds() / scale
        started = await start_loans(p, borrowers, 3, clock_origin=origin, time_scale=scale)
        ids = [loan_id for loan_id, _ in started]
        await wait_status(p, ids, ("funding",), lead_seconds)
        await invest_all(p, started, investors, 2)
        await wait_status(p, ids, ("active",), max(due_at - time.perf_counter(), 1))
        # (their agreements render beside the repayment: done before the instant, so that the
        # burst is the collections alone, as its floor is the activities alone)
        try:
            await wait_documents(p, ids, loans * 3, max(due_at - time.perf_counter(), 1))
        except RuntimeError as error:
            raise RuntimeError(f"{error}: raise the lead time") from None
        if time.perf_counter() > due_at:
            raise RuntimeError(
                "the loans were not all active, their agreements registered, before their due instant: "
                "raise the lead time"
            )
        while True:
            with p.factory() as session:
                paid = session.scalar(
                    select(func.count())
                    .select_from(RepaymentInstallment)
                    .where(
                        RepaymentInstallment.loan_id.in_(ids),
                        RepaymentInstallment.payment_num == 1,
                        RepaymentInstallment.status == "paid",
                    )
                )
            if paid == loans:
                break
            await asyncio.sleep(0.05)
        done = time.perf_counter()
        for _, workflow_id in started:
            await p.client.get_workflow_handle(workflow_id).terminate("benchmark over")
        floor = await due_date_floor(p, loans, lead_seconds=min(lead_seconds, 30.0))
    return (
        BurstRow(f"due-date burst: {loans} installments due at one instant", loans, done - due_at, "installments/s"),
        floor,
    )


@workflow.defn(name="FloorDueDateWorkflow", sandboxed=False)
class FloorDueDateWorkflow:
    """The due-date floor: a timer to one instant, then one trivial activity."""

    @workflow.run
    async def run(self, due_at_epoch: float) -> None:
        await workflow.sleep(max(due_at_epoch - workflow.now().timestamp(), 0))
        await workflow.execute_activity(
            "noop", start_to_close_timeout=timedelta(seconds=30), retry_policy=RetryPolicy(maximum_attempts=3)
        )


async def due_date_floor(p: Platform, count: int, lead_seconds: float) -> BurstRow:
    """The same Temporal server, the same run: `count` workflows whose timers fire at one
    instant, each then running one no-op activity (on a worker of this process, as the
    lifecycle's floor). Time from the instant until every one has finished."""
    async with Worker(
        p.client,
        task_queue="due-date-floor",
        workflows=[FloorDueDateWorkflow],
        activities=[noop],
        max_concurrent_activities=16,
    ):
        due_at = time.time() + lead_seconds
        handles = await asyncio.gather(
            *(
                p.client.start_workflow(
                    FloorDueDateWorkflow.run, due_at, id=f"due-floor-{n}-{uuid.uuid4()}", task_queue="due-date-floor"
                )
                for n in range(count)
            )
        )
        await asyncio.gather(*(h.result() for h in handles))
        done = time.time()
    return BurstRow(
        f"Temporal floor: {count} timers firing at one instant, one no-op activity each",
        count,
        done - due_at,
        "workflows/s",
    )


def _token(p: Platform, user_id: uuid.UUID, role: str) -> dict[str, str]:
    token, _ = issue_access_token(p.settings, user_id, role, 0)
    return {"Authorization": f"Bearer {token}"}


async def funding_burst(tmp: Path, investors: int) -> tuple[BurstRow, str]:
    async with platform(tmp, api=True) as p:
        borrowers, lenders = make_people(p.factory, 1, investors, D("0"), D("1000.00"))
        amount = D("1000.00") * investors
        async with httpx.AsyncClient(
            base_url=p.api_url, timeout=120, limits=httpx.Limits(max_connections=investors)
        ) as api:
            created = await api.post(
                "/v1/loans",
                json={"amount": f"{amount:.2f}", "term_months": 12, "purpose": "bench"},
                headers=_token(p, borrowers[0], "borrower"),
            )
            loan_id = uuid.UUID(created.json()["id"])
            await wait_status(p, [loan_id], ("funding",), 60)
            started = time.perf_counter()
            answers = await asyncio.gather(
                *(
                    api.post(
                        f"/v1/loans/{loan_id}/investments", json={"amount": "1000.00"}, headers=_token(p, u, "investor")
                    )
                    for u in lenders
                )
            )
            answered = time.perf_counter()
            await wait_status(p, [loan_id], ("funded", "active"), 60)
        with p.factory() as session:
            loan = session.get_one(LoanRequest, loan_id)
            funded = loan.funded_amount
        codes = statistics.multimode([a.status_code for a in answers])
        exact = funded == amount and all(a.status_code == 201 for a in answers)
    note = (
        f"funding burst: {investors} x 1,000.00 into a {amount:,.2f} loan: answers {codes}, funded "
        f"{funded:,.2f} ({'exactly' if exact else 'NOT exactly'}); time to fully funded "
        f"{answered - started:.2f} s"
    )
    return BurstRow(
        f"funding burst: {investors} investors at once through the API", investors, answered - started, "investments/s"
    ), note


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# The Schedules that fire within an hour (hourly, every 15 minutes). The memory bench pauses
# them and runs each of their workflows once after each round: when they fire on their own
# depends on the wall clock (the reconciliation on the hour), so a round would show their
# memory or not by chance. (The monthly statements' Schedule fires at 02:00 UTC on the 1st.)
FREQUENT_SCHEDULES = (RECONCILIATION_SCHEDULE_ID, AUTO_INVEST_SCHEDULE_ID)


async def pause_frequent_schedules(client: Client) -> None:
    for schedule_id in FREQUENT_SCHEDULES:
        handle = client.get_schedule_handle(schedule_id)
        for _ in range(600):  # (the worker creates its Schedules as it starts)
            try:
                await handle.pause(note="the memory bench runs this Schedule's workflow after each round")
                break
            except RPCError as error:
                if error.status != RPCStatusCode.NOT_FOUND:
                    raise
                await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"the worker did not create the Schedule {schedule_id}")


async def run_frequent_schedules(client: Client, settings: Settings) -> None:
    """Runs the workflow of each of FREQUENT_SCHEDULES once, as its Schedule starts it
    (worker.platform_schedules: the workflow, its input, its task queue), and waits for it to end."""
    schedules = platform_schedules(settings)
    for schedule_id in FREQUENT_SCHEDULES:
        action = schedules[schedule_id].action
        if not isinstance(action, ScheduleActionStartWorkflow):
            raise RuntimeError(f"the Schedule {schedule_id} does not start a workflow")
        # (what else a Schedule's action may set: none is, or this run would not be the Schedule's)
        others = (action.execution_timeout, action.run_timeout, action.task_timeout, action.retry_policy, action.memo)
        if (
            any(other is not None for other in others)
            or action.typed_search_attributes
            or action.headers
            or action.untyped_search_attributes
        ):
            raise RuntimeError(f"the Schedule {schedule_id} sets more than the bench passes on")
        run = client.execute_workflow(
            action.workflow, args=action.args, id=f"{action.id}-bench-{uuid.uuid4()}", task_queue=action.task_queue
        )
        await asyncio.wait_for(run, timeout=600)


async def worker_memory(tmp: Path, loans: int, steps: int = 4) -> tuple[float, list[tuple[int, float]], float, int]:
    """Worker RSS idle, then after each of `steps` equal rounds of opening loans for funding
    (each loan then waits on its 14-day funding timer) and one run of each frequent Schedule, up
    to `loans`; and how long opening them all took. The worker keeps at most
    WORKER_MAX_CACHED_WORKFLOWS of them in memory."""
    async with platform(tmp) as p:
        idle = _rss_mib(p.worker.pid)
        await pause_frequent_schedules(p.client)
        borrowers, _ = make_people(p.factory, loans, 0, D("0"), D("0"))
        assert loans % steps == 0, "the loans open in equal rounds"
        elapsed = 0.0
        grown: list[tuple[int, float]] = []
        per_step = loans // steps
        for step in range(steps):
            started = time.perf_counter()
            opened = await start_loans(p, borrowers[step * per_step : (step + 1) * per_step], 12)
            await wait_status(p, [loan_id for loan_id, _ in opened], ("funding",), 3600)
            elapsed += time.perf_counter() - started  # (the schedules and the settling pause are not opening)
            await run_frequent_schedules(p.client, p.settings)
            await asyncio.sleep(2)
            grown.append(((step + 1) * per_step, _rss_mib(p.worker.pid)))
            print("[bench] worker memory", grown[-1], datetime.now(UTC).isoformat(timespec="seconds"), flush=True)
        with p.factory() as session:
            accounts = session.scalar(select(func.count()).select_from(LedgerAccount)) or 0
    return idle, grown, elapsed, accounts


# -- the report --------------------------------------------------------------------------------------
async def run_platform_bench(tmp: Path, quick: bool) -> tuple[str, list[str]]:
    loans, term = (10, 6) if quick else (100, 12)
    burst_loans, burst_lead = (30, 60.0) if quick else (200, 240.0)
    funders = 50 if quick else 200

    def progress(*what) -> None:  # a long run: each result as soon as it is known
        print("[bench]", *what, flush=True)

    few, activities = await lifecycle(tmp / "lifecycle-2", loans, 2, term)
    progress(few)
    # The same loans with two worker processes on the same task queues, the same servers.
    two_workers, _ = await lifecycle(tmp / "lifecycle-2-two-workers", loans, 2, term, workers=2)
    progress(two_workers)
    # Fewer loans here: each investment has its agreement to render.
    many, activities_many = await lifecycle(tmp / "lifecycle-20", max(loans // 5, 2), 20, term)
    progress(many)
    temporal = await temporal_floor(tmp / "temporal-floor", loans, term, activities)
    progress(temporal)
    database = await asyncio.to_thread(database_floor, tmp / "database-floor", loans, 2, term)
    progress(database)
    due, due_floor = await due_date_burst(tmp / "due-date-burst", burst_loans, burst_lead)
    progress(due, due_floor)
    funding, funding_note = await funding_burst(tmp / "funding-burst", funders)
    progress(funding, funding_note)

    lines = [
        "| run | loans | investors each | installments | seconds | loans/min | history events per loan | "
        "ledger transactions per loan |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in (few, two_workers, many, temporal, database):
        events = f"{row.events_per_loan:.0f}" if row.events_per_loan is not None else "-"
        ledger = f"{row.ledger_tx_per_loan:.1f}" if row.ledger_tx_per_loan is not None else "-"
        lines.append(
            f"| {row.name} | {row.loans} | {row.investors or '-'} | {row.installments} | {row.seconds:.1f} | "
            f"{row.loans_per_minute:,.0f} | {events} | {ledger} |"
        )
    lines += ["", "| burst | count | seconds | rate |", "|---|---:|---:|---:|"]
    for row in (due, due_floor, funding):
        lines.append(f"| {row.name} | {row.count} | {row.seconds:.2f} | {row.rate:,.1f} {row.unit} |")
    if few.phases is None or two_workers.phases is None:
        raise RuntimeError("a lifecycle row without its phases")
    # (the loan's months are calendar months from the payout's day, 365 days a year of loan time
    # on average: not MONTH_SECONDS each)
    term_seconds = term * 365 / 12 * 86400 / LIFECYCLE_SCALE
    phases_note = (
        f"where the lifecycle's time went (2 investors each, one worker): every loan open for funding at "
        f"{few.phases[0]:.1f} s (scoring), its {loans * 2} investments taken at {few.phases[1]:.1f} s, every loan "
        f"repaying (paid out) at {few.phases[2]:.1f} s, their {loans * (few.investors + 1)} agreements registered "
        f"at {few.phases[3]:.1f} s (rendered beside the repayment, in WORKER_DOCUMENT_RENDERERS="
        f"{DOCUMENT_RENDERERS} processes per worker), all repaid at {few.seconds:.1f} s (a loan's {term} months "
        f"from the payout are about {term_seconds:.1f} s of its timers); with two workers: "
        f"{two_workers.phases[0]:.1f}, {two_workers.phases[1]:.1f}, {two_workers.phases[2]:.1f}, "
        f"{two_workers.phases[3]:.1f} and {two_workers.seconds:.1f} s"
    )
    # Where the lifecycle's gain over the runs before agreements-beside-repayment comes from,
    # said from this run's own figures: and whether any loan's due dates came together.
    on_its_own = 1 + few.investors + term  # the payout, each reservation, each collection
    collected = (
        f"each loan collected each installment on its own ({few.ledger_tx_per_loan:.1f} ledger transactions a "
        f"loan: its payout, {few.investors} reservations and {term} collections)"
        if few.ledger_tx_per_loan == on_its_own
        else f"some collections took more than one installment ({few.ledger_tx_per_loan:.1f} ledger transactions "
        f"a loan, {on_its_own} if each were on its own): loans fell behind their due dates"
    )
    agreements_note = (
        f'the agreements render beside the repayment (README "How a loan lives"): no platform work got faster, '
        f"their renders take the same CPU and now overlap the loans' first months (the last registered "
        f"{few.phases[3] - few.phases[2]:.1f} s after the last payout) instead of coming before them; {collected}"
    )
    notes = [
        f"lifecycle / Temporal floor (2 investors each): {few.seconds / temporal.seconds:.2f}x the time "
        f"(goal: at most 1.3x); with two worker processes: {two_workers.seconds / temporal.seconds:.2f}x "
        f"({few.seconds / two_workers.seconds:.2f}x the speed of one: the loans wait on their timers, and "
        "two processes share the same 2 cores with PostgreSQL and Temporal); lifecycle / database floor: "
        f"{few.seconds / database.seconds:.2f}x the time (the database floor has no timers: it is the money "
        "work alone)",
        phases_note,
        f"history events per loan with 2 and with 20 investors each: {few.events_per_loan:.0f} and "
        f"{many.events_per_loan:.0f}, of which from the disbursement to the end: {few.events_after_funding:.0f} "
        f"and {many.events_after_funding:.0f}. Funding adds one `invest` update and one `reserve_investment` "
        f"activity per investment (the API contract: investments are updates); repayment does not grow with the "
        f"investors: one collection activity distributes to all of them (activities per loan: {activities:.0f} "
        f"and {activities_many:.0f})",
        f"the Temporal floor runs {term} {MONTH_SECONDS}-second timers and {activities:.0f} no-op activities per "
        f"workflow, as many as a loan's history schedules; lifecycles run a month of loan time per "
        f"{MONTH_SECONDS} s (at a month per second, 100 loans on 2 cores once fell more than 3 s, that is 90 "
        f"days, behind their due dates while agreements rendered before the loans repaid)",
        agreements_note,
        f"due-date burst / its Temporal floor (the same server, the same run): "
        f"{due.rate / due_floor.rate:.2f}x the rate (goal: 0.8x). The burst's {burst_loans} loans share 40 "
        "investors (each holds a part of 10 loans, as an auto-investor does): collections that pay the same "
        "investor take that investor's account lock one after the other (the ledger's lock order)",
        funding_note,
        f"every worker here runs with the defaults: WORKER_DOCUMENT_RENDERERS={DOCUMENT_RENDERERS}, "
        f"WORKER_MAX_CACHED_WORKFLOWS={CACHED_WORKFLOWS}",
    ]
    return "\n".join(lines), notes


async def run_worker_memory_bench(tmp: Path, quick: bool) -> tuple[str, list[str]]:
    """The worker's memory as open loans grow (its own section: opening 10,000 loans takes a
    quarter of an hour here)."""
    open_loans = 300 if quick else 10_000
    idle, grown, opening, loans_accounts = await worker_memory(tmp / "worker-memory", open_loans)
    lines = [
        "| open loans (each waiting on its funding timer) | worker RSS MiB |",
        "|---:|---:|",
        f"| 0 | {idle:.0f} |",
    ]
    lines += [f"| {count:,} | {mib:.0f} |" for count, mib in grown]
    notes = [
        f"opening {open_loans:,} loans took {opening:.0f} s ({open_loans / opening:,.0f} loans/s from request "
        "to funding: scoring, the loan's records)",
        "the Schedules that fire within an hour (the ledger reconciliation, auto-invest) are paused, and after "
        "each round each of their workflows runs once before the worker's memory is read: each figure is the "
        "resident memory they leave behind (not their peak), whatever the hour. Every borrower's wallet exists "
        f"from the first round ({loans_accounts:,} ledger accounts): the reconciliation's database aggregates "
        "them all each time, and the worker reads one row",
        f"the worker keeps at most WORKER_MAX_CACHED_WORKFLOWS={CACHED_WORKFLOWS} workflows in memory (its "
        "sticky cache); the rest wait on the server and are replayed from their histories when they next wake "
        "(a due date, an investment), so the loans it holds are bounded however many are open (the table "
        "shows whether its memory is flat too)",
    ]
    return "\n".join(lines), notes
