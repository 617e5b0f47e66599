"""Whole loan lives on Temporal's time-skipping test server with the real activities."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from sqlalchemy import select

from core.db import unit_of_work
from models.ledger import LedgerTransaction
from models.loan_workflow import FundsArrived
from models.loans import Investment, LoanRequest, RepaymentInstallment
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
from workflows.loan import LoanWorkflow

D = Decimal


async def test_loan_repaid_in_full_pays_each_investor_pro_rata(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    client = time_skipping_env.client
    borrower = make_borrower(session_factory)
    investors = [make_investor(session_factory, "100000") for _ in range(3)]
    async with running_worker(client, settings, session_factory, task_queue):
        loan = await start_loan(client, session_factory, task_queue, borrower, "100000.00", 3)
        snapshot = await wait_for_status(loan.handle, "funding")
        # the figures below are worked out by hand for grade A of the standard product (14%)
        assert (snapshot.risk_grade, snapshot.rate_annual) == ("A", D("14.00"))
        for investor, amount in zip(investors, ("50000.00", "30000.00", "20000.00")):
            await invest(loan.handle, investor, amount)
        await wait_for_status(loan.handle, "active")
        give_money(session_factory, borrower, "20000")  # with the disbursed 97,000 it covers every installment
        result = await loan.handle.result()
    assert result.status == "repaid"
    with session_factory() as session:
        rows = session.scalars(
            select(RepaymentInstallment)
            .where(RepaymentInstallment.loan_id == loan.loan_id)
            .order_by(RepaymentInstallment.payment_num)
        ).all()
        assert [r.status for r in rows] == ["paid"] * 3
        # 100,000 at 14%/12 a month over 3 months: payment = A r (1+r)^3 / ((1+r)^3 - 1) = 34,114.118...
        # -> 34,114.12; interest 100,000 x 14%/12 = 1,166.67, 67,052.55 x 14%/12 = 782.28, and
        # 33,720.71 x 14%/12 = 393.41; the last installment repays the 33,720.71 left.
        assert [(r.principal, r.interest, r.paid_principal, r.paid_interest) for r in rows] == [
            (D("32947.45"), D("1166.67"), D("32947.45"), D("1166.67")),
            (D("33331.84"), D("782.28"), D("33331.84"), D("782.28")),
            (D("33720.71"), D("393.41"), D("33720.71"), D("393.41")),
        ]
        assert session.get(LoanRequest, loan.loan_id).status == "repaid"
        assert {i.status for i in session.scalars(select(Investment).where(Investment.loan_id == loan.loan_id))} == {
            "repaid"
        }
        assert_books_balance(session)
    # Each investment receives its agreement's figures (domain/investor_shares.py): its principal
    # exactly (50,000 / 30,000 / 20,000), and the loan's 2,342.36 of interest split 5:3:2 over
    # the whole life: 1,171.18 exactly, 702.708 and 468.472 round down to 702.70 and 468.47,
    # and the kopek left over goes to the largest remainder (the 30% investor): 702.71.
    # (Split month by month, the 30% investor would have received a kopek too many.)
    # Each: 100,000 deposited - what they lent + their principal and interest back.
    expected = [D("101171.18"), D("100702.71"), D("100468.47")]
    assert [balance_of(session_factory, investor).available for investor in investors] == expected
    assert sum(expected) == D("300000.00") + 3 * D("34114.12") - D("100000.00")  # nothing created or lost
    # saved (RECORD_HISTORIES) only once the test's own checks have passed
    await replay_and_maybe_record(loan.handle, "loan_repaid")


def withdraw_everything(factory, user_id) -> None:
    from ledger.cash import pay_withdrawal, request_withdrawal
    from tests.ledger_helpers import new_user

    available = balance_of(factory, user_id).available
    with unit_of_work(factory) as session:
        withdrawal, _ = request_withdrawal(session, user_id, available)
        pay_withdrawal(session, withdrawal.id, new_user(session, "operator").id)


async def funded_active_loan(
    env, factory, task_queue, borrower, amount="100000.00", term=3, shares=("50000.00", "30000.00", "20000.00")
):
    client = env.client
    investors = [make_investor(factory, "100000") for _ in shares]
    loan = await start_loan(client, factory, task_queue, borrower, amount, term)
    await wait_for_status(loan.handle, "funding")
    for investor, share in zip(investors, shares):
        await invest(loan.handle, investor, share)
    snapshot = await wait_for_status(loan.handle, "active")
    return loan, investors, snapshot


def midnight(day):
    from datetime import datetime, time

    return datetime.combine(day, time.min, tzinfo=UTC)


async def test_overdue_installment_is_collected_late_with_the_late_fee(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    env = time_skipping_env
    borrower = make_borrower(session_factory)
    async with running_worker(env.client, settings, session_factory, task_queue):
        loan, investors, snapshot = await funded_active_loan(env, session_factory, task_queue, borrower)
        withdraw_everything(session_factory, borrower)  # the borrower spent the loan
        first = snapshot.installments[0]
        now = await env.get_current_time()
        await env.sleep(midnight(first.due_date) - now + timedelta(days=10, hours=1))
        late = await wait_for_status(loan.handle, "active")
        assert late.installments[0].status == "overdue"
        with session_factory() as session:
            row = session.scalars(
                select(RepaymentInstallment).where(
                    RepaymentInstallment.loan_id == loan.loan_id, RepaymentInstallment.payment_num == 1
                )
            ).one()
            assert row.status == "overdue"
        give_money(session_factory, borrower, "150000")
        await loan.handle.signal(LoanWorkflow.funds_arrived, FundsArrived())
        # 10 days overdue, 3 grace days: 7 chargeable days at 0.1% of the installment
        due = first.principal + first.interest
        expected_fee = (due * D("0.001") * 7).quantize(D("0.01"), rounding=ROUND_HALF_UP)  # half up, as money is
        deadline = asyncio.get_running_loop().time() + 30
        while (state := await loan.handle.query(LoanWorkflow.snapshot)).installments[0].status != "paid":
            assert asyncio.get_running_loop().time() < deadline, "the signal did not collect the overdue installment"
            await asyncio.sleep(0.05)
        assert state.installments[0].paid_fee == expected_fee
        result = await loan.handle.result()
    assert result.status == "repaid"
    with session_factory() as session:
        row = session.scalars(
            select(RepaymentInstallment).where(
                RepaymentInstallment.loan_id == loan.loan_id, RepaymentInstallment.payment_num == 1
            )
        ).one()
        assert (row.status, row.late_fee_paid, row.late_fee_accrued) == ("paid", expected_fee, expected_fee)
        from models.loans import Notification

        kinds = set(session.scalars(select(Notification.kind).where(Notification.loan_id == loan.loan_id)))
        assert "installment_overdue" in kinds
        from scoring.points import payment_history

        # the late installment cost points, the two paid on their due dates and the repayment earned them
        history = payment_history(session, borrower)
        assert (history.late_installments, history.on_time_installments, history.loans_repaid) == (1, 2, 1)
        assert_books_balance(session)
    # saved (RECORD_HISTORIES) only once the test's own checks have passed
    await replay_and_maybe_record(loan.handle, "loan_late_then_paid")


async def test_default_is_covered_by_the_reserve_fund_pro_rata(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    from ledger.accounts import platform_account
    from ledger.postings import Leg, post_transaction

    env = time_skipping_env
    with unit_of_work(session_factory) as session:  # the fund holds 50,000 from earlier loans
        post_transaction(
            session,
            key="test:reserve-topup",
            kind="reserve_topup",
            legs=[
                Leg(platform_account(session, "nominal").id, D("-50000.00")),
                Leg(platform_account(session, "reserve_fund").id, D("50000.00")),
            ],
        )
    borrower = make_borrower(session_factory)
    async with running_worker(env.client, settings, session_factory, task_queue):
        loan, investors, _ = await funded_active_loan(env, session_factory, task_queue, borrower)
        withdraw_everything(session_factory, borrower)
        result = await loan.handle.result()
    assert result.status == "defaulted"
    assert all(i.status == "written_off" for i in result.installments)
    # fund: 50,000 + this loan's 2% (2,000) = 52,000 < 100,000 outstanding
    covered = D("52000.00")
    # 52,000 split 50/30/20 is exactly 26,000 / 15,600 / 10,400; the 48,000 not covered is
    # lost in the same proportions: 24,000 / 14,400 / 9,600
    cover = dict(zip(investors, (D("26000.00"), D("15600.00"), D("10400.00"))))
    loss = dict(zip(investors, (D("24000.00"), D("14400.00"), D("9600.00"))))
    for investor, lent in zip(investors, (D("50000.00"), D("30000.00"), D("20000.00"))):
        assert balance_of(session_factory, investor).available == D("100000.00") - lent + cover[investor]
    with session_factory() as session:
        assert platform_account(session, "reserve_fund").balance == 0
        investments = session.scalars(select(Investment).where(Investment.loan_id == loan.loan_id)).all()
        assert {i.status for i in investments} == {"defaulted"}
        assert {i.investor_id: (i.reserve_cover_amount, i.loss_amount) for i in investments} == {
            investor: (cover[investor], loss[investor]) for investor in investors
        }
        assert sum(i.loss_amount for i in investments) == D("48000.00")
        assert sum(i.reserve_cover_amount for i in investments) == covered
        rows = session.scalars(select(RepaymentInstallment).where(RepaymentInstallment.loan_id == loan.loan_id)).all()
        assert {r.status for r in rows} == {"written_off"}
        assert session.get(LoanRequest, loan.loan_id).status == "defaulted"
        assert_books_balance(session)
    # saved (RECORD_HISTORIES) only once the test's own checks have passed
    await replay_and_maybe_record(loan.handle, "loan_defaulted")


async def test_unfunded_loan_releases_every_reservation(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    env = time_skipping_env
    borrower = make_borrower(session_factory)
    investors = [make_investor(session_factory, "50000") for _ in range(3)]
    async with running_worker(env.client, settings, session_factory, task_queue):
        loan = await start_loan(env.client, session_factory, task_queue, borrower, "100000.00", 12)
        await wait_for_status(loan.handle, "funding")
        for investor in investors:
            await invest(loan.handle, investor, "10000.00")
        assert balance_of(session_factory, investors[0]).reserved == D("10000.00")
        result = await loan.handle.result()  # the 14-day window passes
    assert (result.status, result.rejection_reason) == ("rejected", "funding_expired")
    for investor in investors:
        balance = balance_of(session_factory, investor)
        assert (balance.available, balance.reserved) == (D("50000.00"), D("0.00"))
    with session_factory() as session:
        assert {i.status for i in session.scalars(select(Investment).where(Investment.loan_id == loan.loan_id))} == {
            "released"
        }
        stored = session.get(LoanRequest, loan.loan_id)
        assert (stored.status, stored.rejection_reason, stored.funded_amount) == ("rejected", "funding_expired", 0)
        from models.auto_invest import InvestorYearTotal

        # the released reservations no longer count against the investors' 259-FZ year
        totals = session.scalars(
            select(InvestorYearTotal.invested).where(InvestorYearTotal.investor_id.in_(investors))
        ).all()
        assert totals == [D("0.00")] * 3
        assert_books_balance(session)
    # saved (RECORD_HISTORIES) only once the test's own checks have passed
    await replay_and_maybe_record(loan.handle, "loan_unfunded")


async def test_early_repayment_pays_principal_and_interest_to_date(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    from models.loan_workflow import EarlyRepaymentRequest

    env = time_skipping_env
    borrower = make_borrower(session_factory)
    async with running_worker(env.client, settings, session_factory, task_queue):
        loan, investors, snapshot = await funded_active_loan(env, session_factory, task_queue, borrower, term=12)
        first = snapshot.installments[0]
        now = await env.get_current_time()
        await env.sleep(midnight(first.due_date) - now + timedelta(days=15, hours=1))
        state = await loan.handle.query(LoanWorkflow.snapshot)
        assert state.installments[0].status == "paid" and state.installments[1].status == "pending"
        outstanding = sum((i.principal for i in state.installments[1:]), D(0))
        days = ((await env.get_current_time()).date() - first.due_date).days
        assert days == 15
        expected_interest = (outstanding * snapshot.rate_annual / 100 * days / 365).quantize(
            D("0.01"), rounding=ROUND_HALF_UP
        )
        give_money(session_factory, borrower, "10000")  # the disbursed 97,000 fell short of 100,000 + interest
        result = await loan.handle.execute_update(
            LoanWorkflow.repay_early, EarlyRepaymentRequest(requested_by=borrower, loan_id=loan.loan_id)
        )
        assert result.principal == outstanding and result.interest == expected_interest
        assert result.paid == outstanding + expected_interest
        final = await loan.handle.result()
    assert final.status == "repaid"
    with session_factory() as session:
        rows = session.scalars(select(RepaymentInstallment).where(RepaymentInstallment.loan_id == loan.loan_id)).all()
        assert {r.status for r in rows} == {"paid"}
        assert sum((r.paid_principal for r in rows), D(0)) == D("100000.00")
        assert_books_balance(session)
    # saved (RECORD_HISTORIES) only once the test's own checks have passed
    await replay_and_maybe_record(loan.handle, "loan_repaid_early")


async def test_early_repayment_without_the_money_is_refused(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    from temporalio.client import WorkflowUpdateFailedError

    from models.loan_workflow import EarlyRepaymentRequest

    env = time_skipping_env
    borrower = make_borrower(session_factory)
    async with running_worker(env.client, settings, session_factory, task_queue):
        loan, _, _ = await funded_active_loan(env, session_factory, task_queue, borrower, term=12)
        withdraw_everything(session_factory, borrower)
        with pytest.raises(WorkflowUpdateFailedError) as info:
            await loan.handle.execute_update(
                LoanWorkflow.repay_early, EarlyRepaymentRequest(requested_by=borrower, loan_id=loan.loan_id)
            )
        assert info.value.cause.type == "InsufficientFunds"
        assert (await loan.handle.query(LoanWorkflow.snapshot)).status == "active"
        # The refusal is recorded for that request only: with the money there, the borrower
        # asks again and the loan is repaid (one collection, the second request's).
        give_money(session_factory, borrower, "200000")
        result = await loan.handle.execute_update(
            LoanWorkflow.repay_early, EarlyRepaymentRequest(requested_by=borrower, loan_id=loan.loan_id)
        )
        assert result.principal == D("100000.00")
        assert (await loan.handle.result()).status == "repaid"
    with session_factory() as session:
        assert_books_balance(session)
        kinds = session.scalars(select(LedgerTransaction.kind).where(LedgerTransaction.loan_id == loan.loan_id)).all()
        assert kinds.count("early_repayment_collection") == 1
    # saved (RECORD_HISTORIES) only once the test's own checks have passed
    await replay_and_maybe_record(loan.handle, "loan_repaid_early_after_refusal")


async def test_long_loan_continues_as_new_and_still_repays_exactly(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    env = time_skipping_env
    borrower = make_borrower(session_factory, income="500000")
    investors = [make_investor(session_factory, "100000") for _ in range(2)]
    async with running_worker(env.client, settings, session_factory, task_queue):
        # a small history budget forces several runs
        loan = await start_loan(
            env.client, session_factory, task_queue, borrower, "100000.00", 36, history_events_per_run=60
        )
        await wait_for_status(loan.handle, "funding")
        for investor in investors:
            await invest(loan.handle, investor, "50000.00")
        await wait_for_status(loan.handle, "active")
        give_money(session_factory, borrower, "50000")
        result = await loan.handle.result()
        latest = await env.client.get_workflow_handle(loan.handle.id).describe()
    assert result.status == "repaid"
    assert latest.run_id != loan.handle.first_execution_run_id  # it did continue as new
    assert [i.status for i in result.installments] == ["paid"] * 36
    with session_factory() as session:
        rows = session.scalars(select(RepaymentInstallment).where(RepaymentInstallment.loan_id == loan.loan_id)).all()
        assert len(rows) == 36 and {r.status for r in rows} == {"paid"}
        assert sum((r.paid_principal for r in rows), D(0)) == D("100000.00")
        assert_books_balance(session)
    # saved (RECORD_HISTORIES) only once the test's own checks have passed
    await replay_and_maybe_record(loan.handle, "loan_continued_while_repaying")  # every run


async def test_a_pinned_clock_origin_sets_the_loans_start_date(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    """The benchmarks pin many loans to one clock origin so their installments fall due at
    the same instant: the schedule then starts from the origin's date, not the payout's."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from dateutil.relativedelta import relativedelta

    env = time_skipping_env
    borrower = make_borrower(session_factory)
    origin = datetime.now(UTC) - timedelta(days=3)
    investors = [make_investor(session_factory, "100000") for _ in range(2)]
    async with running_worker(env.client, settings, session_factory, task_queue):
        loan = await start_loan(env.client, session_factory, task_queue, borrower, "100000.00", 3, clock_origin=origin)
        await wait_for_status(loan.handle, "funding")
        for investor in investors:
            await invest(loan.handle, investor, "50000.00")
        snapshot = await wait_for_status(loan.handle, "active")
        await loan.handle.terminate("test over")
    # (the origin's day in the platform's time zone: after 21:00 UTC, Moscow's tomorrow)
    start = origin.astimezone(ZoneInfo(settings.PLATFORM_TIME_ZONE)).date()
    assert [i.due_date for i in snapshot.installments] == [start + relativedelta(months=n) for n in (1, 2, 3)]
