"""Money operations decide once, under the loan's lock, whatever their attempts do (issue:
money exactly once). On a real PostgreSQL, with the real activities run as Temporal runs
them (ActivityEnvironment): a stalled first attempt and its retry side by side, a stalled
attempt that wakes up after its retry, a refusal that must stay the answer for its key, a
default retried after it committed, and the one lock order under concurrency."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select, text
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.loans import LoanActivities
from compliance.audit import lock_loan
from core.db import loan_lock_held, unit_of_work
from core.errors import NotFound
from ledger.accounts import wallet_accounts, wallet_of_user
from ledger.postings import Leg, lock_accounts, post_transaction
from loans import collections, defaults
from loans.common import loan_row
from loans.requests import create_loan_request
from models.ledger import LedgerTransaction
from models.loan_workflow import AmountsDue, CollectInput, DefaultInput
from models.loans import Investment, RepaymentInstallment
from models.outcomes import OperationOutcome
from tests.ledger_helpers import assert_books_balance
from tests.loan_helpers import active_loan_in_db, balance_of, give_money, make_borrower, make_investor

D = Decimal
NOW = datetime(2026, 11, 22, tzinfo=UTC)
DUE = AmountsDue(payment_num=1, fee=D("0.00"), interest=D("900.00"), principal=D("7000.00"))


def collection(loan_id, borrower, seq: int = 1, require_full: bool = False, purpose: str = "installment"):
    return CollectInput(
        loan_id=loan_id,
        borrower_id=borrower,
        currency="RUB",
        key=f"loan:{loan_id}:collection:{seq}",
        purpose=purpose,
        at=NOW,
        items=[DUE],
        require_full=require_full,
    )


def transactions(session_factory, loan_id, kind: str | None = None) -> int:
    query = select(func.count()).select_from(LedgerTransaction).where(LedgerTransaction.loan_id == loan_id)
    if kind:
        query = query.where(LedgerTransaction.kind == kind)
    with session_factory() as session:
        return session.scalar(query)


@pytest.fixture
def loan(session_factory, seeded):
    investors = [make_investor(session_factory, "30000") for _ in range(3)]
    borrower = make_borrower(session_factory)
    return active_loan_in_db(session_factory, borrower, investors), borrower, investors


def test_a_retry_behind_a_stalled_attempt_waits_and_returns_its_answer(session_factory, loan, monkeypatch):
    """The first attempt has taken the money (not yet committed) and stalls; Temporal starts
    the retry. The retry waits on the loan's lock, then finds the first attempt's outcome:
    one collection, the same answer, the installment paid once."""
    loan_id, borrower, investors = loan
    give_money(session_factory, borrower, "7900.00")
    activities = LoanActivities(session_factory)
    real = collections.collect_installments
    holding, release = threading.Event(), threading.Event()

    def stalls_after_acting(session, input):
        result = real(session, input)
        if threading.current_thread().name.startswith("first"):
            holding.set()
            assert release.wait(30)  # frozen with the money taken and the locks held
        return result

    monkeypatch.setattr(collections, "collect_installments", stalls_after_acting)
    with ThreadPoolExecutor(1, "first") as first_pool, ThreadPoolExecutor(1, "retry") as retry_pool:
        first = first_pool.submit(
            ActivityEnvironment().run, activities.collect_installments, collection(loan_id, borrower)
        )
        assert holding.wait(30)
        retry = retry_pool.submit(
            ActivityEnvironment().run, activities.collect_installments, collection(loan_id, borrower)
        )
        time.sleep(1.0)
        assert not retry.done(), "the retry decided while the first attempt held the loan"
        release.set()
        assert retry.result(30) == first.result(30)
    assert retry.result().total == D("7900.00")
    assert transactions(session_factory, loan_id, "installment_collection") == 1
    assert balance_of(session_factory, borrower).available == 0
    assert sorted(balance_of(session_factory, i).available for i in investors) == [
        D("32633.33"),
        D("32633.33"),
        D("32633.34"),
    ]
    with session_factory() as session:
        row = session.scalars(
            select(RepaymentInstallment).where(
                RepaymentInstallment.loan_id == loan_id, RepaymentInstallment.payment_num == 1
            )
        ).one()
        assert (row.status, row.paid_principal, row.paid_interest) == ("paid", D("7000.00"), D("900.00"))
        assert_books_balance(session)


def test_a_stalled_attempt_that_wakes_after_its_retry_moves_nothing(session_factory, loan):
    """The retry found the wallet empty ("nothing collected"); the money arrives; the first
    attempt wakes up with the same key. It must not collect: the workflow already moved on
    with the retry's answer (and will collect under a new key)."""
    loan_id, borrower, _ = loan
    activities = LoanActivities(session_factory)
    retry = ActivityEnvironment().run(activities.collect_installments, collection(loan_id, borrower))
    assert retry.total == 0
    give_money(session_factory, borrower, "7900.00")
    woken = ActivityEnvironment().run(activities.collect_installments, collection(loan_id, borrower))
    assert woken == retry
    assert balance_of(session_factory, borrower).available == D("7900.00")
    assert transactions(session_factory, loan_id, "installment_collection") == 0
    # the next collection (a new key) takes it
    assert ActivityEnvironment().run(activities.collect_installments, collection(loan_id, borrower, 2)).total == D(
        "7900.00"
    )


def test_a_refusal_stays_the_answer_for_its_key(session_factory, loan):
    """An early repayment refused for lack of money is recorded as refused: an attempt of it
    that wakes up after the money arrived does not take it. A new request (a new key) does."""
    loan_id, borrower, _ = loan
    activities = LoanActivities(session_factory)
    request = collection(loan_id, borrower, 1, require_full=True, purpose="early_repayment")
    with pytest.raises(ApplicationError) as refused:
        ActivityEnvironment().run(activities.collect_installments, request)
    assert (refused.value.type, refused.value.non_retryable) == ("InsufficientFunds", True)
    give_money(session_factory, borrower, "7900.00")
    with pytest.raises(ApplicationError) as again:
        ActivityEnvironment().run(activities.collect_installments, request)
    assert again.value.type == "InsufficientFunds" and again.value.message == refused.value.message
    assert transactions(session_factory, loan_id) == 0
    with session_factory() as session:
        outcome = session.get(OperationOutcome, request.key)
        assert outcome.result is None and outcome.refusal["error"] == "InsufficientFunds"
    paid = ActivityEnvironment().run(
        activities.collect_installments, collection(loan_id, borrower, 2, require_full=True, purpose="early_repayment")
    )
    assert paid.total == D("7900.00")


def test_a_default_retried_after_it_committed_returns_its_first_answer(session_factory, loan):
    """The first attempt committed (investments now "defaulted"); the retry must answer the
    same and move nothing, not look for active investments and fail forever."""
    loan_id, _, investors = loan
    activities = LoanActivities(session_factory)
    default = DefaultInput(
        loan_id=loan_id,
        currency="RUB",
        outstanding_principal=D("14000.00"),
        written_off=[DUE, DUE.model_copy(update={"payment_num": 2})],
        at=NOW,
    )
    first = ActivityEnvironment().run(activities.default_loan, default)
    again = ActivityEnvironment().run(activities.default_loan, default)
    assert again == first and first.covered + first.loss == D("14000.00")
    assert transactions(session_factory, loan_id, "reserve_cover") == (1 if first.covered else 0)
    # The service itself, retried without the recorded outcome (a default that committed
    # before outcomes existed): it reads what it wrote on each investment.
    with unit_of_work(session_factory) as session:
        assert defaults.default_loan(session, default) == first
    with session_factory() as session:
        statuses = session.scalars(select(Investment.status).where(Investment.loan_id == loan_id)).all()
        assert statuses == ["defaulted"] * len(investors)
        assert_books_balance(session)


def test_collections_and_transfers_on_the_same_accounts_never_deadlock(session_factory, seeded):
    """One lock order (ledger/postings.py): a collection (borrower -> investors) and postings
    that touch the same investor and borrower accounts from the other side run side by side,
    many times, without PostgreSQL ever finding a deadlock."""
    investors = [make_investor(session_factory, "30000") for _ in range(3)]  # lower account ids
    borrower = make_borrower(session_factory)
    loan_id = active_loan_in_db(session_factory, borrower, investors)
    give_money(session_factory, borrower, "1000.00")
    with session_factory() as session:
        investor_account = wallet_accounts(session, wallet_of_user(session, investors[0]).id)[0].id
        borrower_account = wallet_accounts(session, wallet_of_user(session, borrower).id)[0].id
    assert investor_account < borrower_account
    activities = LoanActivities(session_factory)
    rounds = 10
    start = threading.Barrier(2)

    def collect(n: int) -> None:
        start.wait(10)
        item = AmountsDue(payment_num=1, fee=D("0.00"), interest=D("0.03"), principal=D("0.00"))
        ActivityEnvironment().run(
            activities.collect_installments,
            collection(loan_id, borrower, n).model_copy(update={"items": [item]}),
        )

    def transfer(n: int) -> None:
        start.wait(10)
        with unit_of_work(session_factory) as session:
            # in the one order: the investor's account (the lower id) first, held a moment
            lock_accounts(session, {investor_account})
            time.sleep(0.05)
            post_transaction(
                session,
                key=f"test:transfer:{loan_id}:{n}",
                kind="test_transfer",
                legs=[Leg(investor_account, D("-0.03")), Leg(borrower_account, D("0.03"))],
            )

    with ThreadPoolExecutor(2) as pool:
        for n in range(1, rounds + 1):
            done = [pool.submit(collect, n), pool.submit(transfer, n)]
            for future in done:
                future.result(30)  # a deadlock would raise here (psycopg DeadlockDetected)
    assert transactions(session_factory, loan_id, "installment_collection") == rounds
    with session_factory() as session:
        assert_books_balance(session)


def funding_loan(session_factory, borrower) -> uuid.UUID:
    with unit_of_work(session_factory) as session:
        loan, _ = create_loan_request(
            session,
            borrower,
            product_code="standard",
            amount=D("20000.00"),
            term_months=3,
            purpose="x",
            simulation_id=None,
            client_key=None,
        )
        loan.status = "funding"
        return loan.id


def test_releases_and_disbursements_sharing_investors_never_deadlock(session_factory, seeded, monkeypatch):
    """A loan that was not funded releases its investors' money while another loan of the
    same investors pays out. The release takes every investor's accounts at once, in the one
    order (a release that went investor by investor, slowly, deadlocked here)."""
    import activities.loans as loan_activities
    from models.loan_workflow import (
        DisburseInput,
        ReleaseInvestmentsInput,
        ReserveInvestmentInput,
        ScheduledInstallment,
    )

    real_give_back = loan_activities.give_back

    def slow_give_back(*args, **kwargs):
        time.sleep(0.05)  # a slow step between two investors' releases
        return real_give_back(*args, **kwargs)

    monkeypatch.setattr(loan_activities, "give_back", slow_give_back)
    first, second = make_investor(session_factory, "200000"), make_investor(session_factory, "200000")
    borrower = make_borrower(session_factory)
    activities = LoanActivities(session_factory)
    environment = ActivityEnvironment()
    for _ in range(6):
        unfunded, funded = funding_loan(session_factory, borrower), funding_loan(session_factory, borrower)
        # the unfunded loan releases the second investor first, then the first; the funded
        # one pays out from both (ascending: the first, then the second)
        for loan_id, investors in ((unfunded, (second, first)), (funded, (first, second))):
            for investor in investors:
                environment.run(
                    activities.reserve_investment,
                    ReserveInvestmentInput(
                        loan_id=loan_id, investment_id=uuid.uuid4(), investor_id=investor, amount=D("10000.00"), at=NOW
                    ),
                )
        start = threading.Barrier(2)

        def release(loan_id=unfunded, start=start) -> None:
            start.wait(10)
            environment.run(activities.release_investments, ReleaseInvestmentsInput(loan_id=loan_id, reason="test"))

        def disburse(loan_id=funded, start=start) -> None:
            start.wait(10)
            installment = ScheduledInstallment(
                payment_num=1, due_date=date(2027, 1, 1), principal=D("20000.00"), interest=D("100.00")
            )
            environment.run(
                activities.disburse_loan,
                DisburseInput(
                    loan_id=loan_id,
                    borrower_id=borrower,
                    amount=D("20000.00"),
                    currency="RUB",
                    platform_fee=D("200.00"),
                    reserve_contribution=D("400.00"),
                    rate_annual=D("14.00"),
                    installments=[installment],
                    at=NOW,
                ),
            )

        with ThreadPoolExecutor(2) as pool:
            for future in [pool.submit(release), pool.submit(disburse)]:
                future.result(60)  # a deadlock would raise here (psycopg DeadlockDetected)
    assert balance_of(session_factory, first).reserved == balance_of(session_factory, second).reserved == 0
    with session_factory() as session:
        assert_books_balance(session)


def test_a_loan_lock_is_taken_once_per_transaction_and_forgotten_with_a_savepoint(session_factory, loan):
    """The loan's row is locked once per transaction (the audit chain then skips its own lock):
    a lock taken inside a savepoint is not remembered, since rolling back to the savepoint
    releases it; nor is one of an earlier transaction."""
    loan_id, _, _ = loan
    with session_factory() as session:
        with session.begin():
            with session.begin_nested() as savepoint:
                loan_row(session, loan_id, lock=True)
                assert not loan_lock_held(session, loan_id)
                savepoint.rollback()
            assert not loan_lock_held(session, loan_id)
            loan_row(session, loan_id, lock=True)
            assert loan_lock_held(session, loan_id)
            statements: list[str] = []
            connection = session.connection()
            count = lambda *args: statements.append(args[2])  # (before_cursor_execute's statement)
            event.listen(connection, "before_cursor_execute", count)
            try:
                assert lock_loan(session, loan_id) == loan_id
                assert statements == [], "the audit chain's lock is not taken twice"
                with session.begin_nested() as savepoint:
                    savepoint.rollback()
                assert loan_lock_held(session, loan_id), "a savepoint rolled back keeps the locks taken before it"
            finally:
                event.remove(connection, "before_cursor_execute", count)
            idle_limit = session.execute(text("SELECT current_setting('idle_in_transaction_session_timeout')")).scalar()
            assert idle_limit != "0", "the lock's own statement set the idle limit"
        with session.begin():
            assert not loan_lock_held(session, loan_id)
            with pytest.raises(NotFound):
                loan_row(session, uuid.uuid4(), lock=True)
