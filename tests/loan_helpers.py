"""Running loans through their workflow in tests: real activities on the test's database,
a real Temporal server (time-skipping or dev), investors with money."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date
from decimal import Decimal

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowHandle

from core.db import unit_of_work
from core.settings import Settings
from ledger.cash import confirm_deposit, request_deposit
from ledger.wallets import wallet_balance
from loans.requests import create_loan_request, workflow_input
from models.loan_workflow import InvestmentAccepted, InvestmentRequest, LoanSnapshot
from models.loans import Investment, LoanRequest, RepaymentInstallment
from models.users import BorrowerProfile
from tests.ledger_helpers import new_user
from workflows.loan import LoanWorkflow

D = Decimal


@asynccontextmanager
async def running_worker(
    client: Client, settings: Settings, factory: sessionmaker[Session], task_queue: str, stand_ins=()
):
    from worker import platform_workers

    # (the platform's worker and the documents', as the worker process runs them)
    async with platform_workers(client, settings, factory, task_queue=task_queue, stand_ins=stand_ins) as worker:
        yield worker


def make_borrower(
    factory: sessionmaker[Session], income: str = "200000", obligations: str = "0", employment_months: int = 48
) -> uuid.UUID:
    from datetime import datetime

    from ledger.accounts import open_wallet

    with unit_of_work(factory) as session:
        user = new_user(session, "borrower")
        open_wallet(session, user.id, "borrower")
        session.add(
            BorrowerProfile(
                user_id=user.id,
                monthly_income=D(income),
                monthly_obligations=D(obligations),
                employment_months=employment_months,
                updated_at=datetime.now(UTC),
            )
        )
        return user.id


def make_investor(factory: sessionmaker[Session], money: str) -> uuid.UUID:
    from ledger.accounts import open_wallet

    with unit_of_work(factory) as session:
        user = new_user(session, "investor")
        open_wallet(session, user.id, "investor")
        if D(money) > 0:
            deposit_money(session, user.id, D(money))
        return user.id


def deposit_money(session: Session, user_id: uuid.UUID, amount: Decimal) -> None:
    operator = new_user(session, "operator")
    deposit, _ = request_deposit(session, user_id, amount)
    confirm_deposit(session, deposit.id, operator.id)


def give_money(factory: sessionmaker[Session], user_id: uuid.UUID, amount: str) -> None:
    with unit_of_work(factory) as session:
        deposit_money(session, user_id, D(amount))


def balance_of(factory: sessionmaker[Session], user_id: uuid.UUID):
    from ledger.accounts import wallet_of_user

    with factory() as session:
        return wallet_balance(session, wallet_of_user(session, user_id).id)


@dataclass
class StartedLoan:
    loan_id: uuid.UUID
    handle: WorkflowHandle


async def start_loan(
    client: Client,
    factory: sessionmaker[Session],
    task_queue: str,
    borrower_id: uuid.UUID,
    amount: str,
    term: int,
    product: str = "standard",
    time_scale: int = 1,
    search_attributes: bool = False,
    **input_overrides,
) -> StartedLoan:
    def prepare():
        with unit_of_work(factory) as session:
            loan, _ = create_loan_request(
                session,
                borrower_id,
                product_code=product,
                amount=D(amount),
                term_months=term,
                purpose="test",
                simulation_id=None,
                client_key=None,
            )
            wf_input = workflow_input(session, loan, time_scale)
            return (
                loan.id,
                loan.workflow_id,
                wf_input.model_copy(update={"search_attributes": search_attributes, **input_overrides}),
            )

    loan_id, workflow_id, wf_input = await asyncio.to_thread(prepare)
    handle = await client.start_workflow(LoanWorkflow.run, wf_input, id=workflow_id, task_queue=task_queue)
    return StartedLoan(loan_id=loan_id, handle=handle)


async def wait_for_status(handle: WorkflowHandle, *statuses: str, timeout: float = 30.0) -> LoanSnapshot:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        snapshot: LoanSnapshot = await handle.query(LoanWorkflow.snapshot)
        if snapshot.status in statuses:
            return snapshot
        if loop.time() > deadline:
            raise AssertionError(f"loan stayed {snapshot.status}, expected {statuses}")
        await asyncio.sleep(0.05)


async def wait_for_agreements(client: Client, loan_id: uuid.UUID | str, timeout: float = 60.0) -> None:
    """Until the loan's agreements, rendering beside its repayment, are registered: a trade
    of the loan waits for them (AgreementsPending)."""
    handle = client.get_workflow_handle(f"loan-{loan_id}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (await handle.query(LoanWorkflow.snapshot)).agreements_pending:
        assert loop.time() < deadline, "the loan's agreements were never registered"
        await asyncio.sleep(0.05)


async def wait_read_side_status(
    factory: sessionmaker[Session], loan_id: uuid.UUID, status: str, timeout: float = 30
) -> None:
    """The workflow records a status by an activity just after it takes it: the market reads
    the record, as a seller would see it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        with factory() as session:
            if session.get_one(LoanRequest, loan_id).status == status:
                return
        assert loop.time() < deadline, f"the read side never recorded the loan {status}"
        await asyncio.sleep(0.05)


def loan_id_of(handle: WorkflowHandle) -> uuid.UUID:
    """The loan a workflow handle is for (its id is loan-<uuid>)."""
    return uuid.UUID(handle.id.removeprefix("loan-"))


async def invest(handle: WorkflowHandle, investor_id: uuid.UUID, amount: str) -> InvestmentAccepted:
    investment_id = uuid.uuid4()
    return await handle.execute_update(
        LoanWorkflow.invest,
        InvestmentRequest(
            investment_id=investment_id, investor_id=investor_id, amount=D(amount), loan_id=loan_id_of(handle)
        ),
        id=f"investment-{investment_id}",
    )


def active_loan_in_db(session_factory, borrower, investors, installment_status: str = "pending") -> uuid.UUID:
    """A disbursed loan of 14,000 on the read side only (no workflow): two installments of
    7,000 + 900 due 1 January and 1 February 2026, the investors' active investments adding up
    to the loan (equal parts: 4,666.67 / 4,666.67 / 4,666.66 for three), and each
    investment's agreed part of each installment stored as the disbursement stores it."""
    from domain.allocation import split_pro_rata
    from loans.investor_shares import store_agreed_shares

    with unit_of_work(session_factory) as session:
        loan, _ = create_loan_request(
            session,
            borrower,
            product_code="standard",
            amount=D("14000.00"),
            term_months=3,
            purpose="x",
            simulation_id=None,
            client_key=None,
        )
        loan.status = "active"
        parts = split_pro_rata(D("14000.00"), {n: D(1) for n in range(len(investors))})
        for n, investor in enumerate(investors):
            session.add(Investment(loan_id=loan.id, investor_id=investor, amount=parts[n], status="active"))
        for n in (1, 2):
            session.add(
                RepaymentInstallment(
                    loan_id=loan.id,
                    payment_num=n,
                    due_date=date(2026, n, 1),
                    principal=D("7000.00"),
                    interest=D("900.00"),
                    status=installment_status,
                )
            )
        session.flush()
        store_agreed_shares(session, loan.id)
        return loan.id


# Replay (with the content checks) and RECORD_HISTORIES=1 recording live in tests/history_replay.py.
from tests.history_replay import replay_and_maybe_record  # noqa: E402,F401
