"""The platform's time is not the borrower's time: each rule of README's "How a loan lives" on
Temporal's time-skipping server with the real activities.

The platform away across due dates: the time-skipping server does not move its clock while a
task waits for a worker, so an outage is made here the way the loan sees one: its clock
starts (is pinned, `clock_origin`) weeks or months before it is paid out, and its first
attempts come that late after the due dates. A real outage (the worker process stopped and
started again) is tests/test_faults.py's, on the dev server.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select
from temporalio import activity

from activities.loans import LoanActivities
from core.db import unit_of_work
from models.loan_workflow import DisburseInput, DisburseResult, FundsArrived, LoanSnapshot
from models.loans import Investment, InvestmentInstallment, LoanRequest, Notification, RepaymentInstallment
from products.catalog import STANDARD
from scoring.points import payment_history
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
from tests.test_loan_lifecycle import funded_active_loan, withdraw_everything
from workflows.loan import LoanWorkflow

D = Decimal
MOSCOW = ZoneInfo("Europe/Moscow")
GRACE, FEE_PER_DAY, DEFAULT_AFTER = (
    STANDARD.late_fee_grace_days,
    STANDARD.late_fee_percent_per_day,
    STANDARD.default_after_days_overdue,
)


def moscow(day: date, hour: int = 0) -> datetime:
    """A moment of a day in Moscow (due days are whole Moscow days)."""
    return datetime.combine(day, time(hour), tzinfo=MOSCOW).astimezone(UTC)


async def sleep_until(env, moment: datetime) -> None:
    now = await env.get_current_time()
    if moment > now:
        await env.sleep(moment - now)


async def until(handle, done, what: str, timeout: float = 30.0) -> LoanSnapshot:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done(snapshot := await handle.query(LoanWorkflow.snapshot)):
        assert loop.time() < deadline, f"waited for {what}: {snapshot}"
        await asyncio.sleep(0.05)
    return snapshot


def notices(factory, loan_id, kind: str) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).where(Notification.loan_id == loan_id, Notification.kind == kind))


def attempts_that_found_nothing(factory, loan_id) -> int:
    from models.records import AuditRecord

    with factory() as session:
        return session.scalar(
            select(func.count()).where(
                AuditRecord.loan_id == loan_id,
                AuditRecord.action == "installment.collected",
                AuditRecord.note.like("nothing collected%"),
            )
        )


def schedule_rows(factory, loan_id) -> list[RepaymentInstallment]:
    with factory() as session:
        return list(
            session.scalars(
                select(RepaymentInstallment)
                .where(RepaymentInstallment.loan_id == loan_id)
                .order_by(RepaymentInstallment.payment_num)
            )
        )


def late_fee(amount: Decimal, days_overdue: int) -> Decimal:
    """The standard product's fee, worked out here: 0.1% of the overdue amount for each day
    beyond the 3 grace days, over the whole span, rounded once."""
    chargeable = max(0, days_overdue - GRACE)
    return (amount * FEE_PER_DAY / 100 * chargeable).quantize(D("0.01"), rounding=ROUND_HALF_UP)


def assert_nothing_late(factory, loan_id, borrower, installments: int) -> None:
    rows = schedule_rows(factory, loan_id)
    assert [(r.status, r.late_fee_accrued, r.late_fee_paid) for r in rows] == [("paid", D(0), D(0))] * installments
    assert notices(factory, loan_id, "installment_overdue") == 0
    with factory() as session:
        history = payment_history(session, borrower)
        assert (history.late_installments, history.on_time_installments) == (0, installments)
        assert_books_balance(session)


def spends_the_loan_at_once(factory):
    """A stand-in for the disbursement: the real one, then the borrower takes every rouble out
    of the wallet in the same breath (before the loan can look at its due dates)."""
    real = LoanActivities(factory)

    @activity.defn(name="disburse_loan")
    def disburse_loan(input: DisburseInput) -> DisburseResult:
        result = real.disburse_loan(input)
        withdraw_everything(factory, input.borrower_id)
        return result

    return disburse_loan


async def loan_the_platform_reaches_late(env, factory, task_queue, borrower, days_late: int, money: str | None):
    """A 3-month loan of 100,000 whose first due date was `days_late` days ago when it is paid
    out (its clock started a month and that many days earlier): from the loan's side, the
    platform was away across the due date and comes back now. The borrower holds `money` as
    well as the loan (None: spent the loan, holds nothing) when the platform comes back."""
    now = await env.get_current_time()
    origin = now - relativedelta(months=1) - timedelta(days=days_late)
    investors = [make_investor(factory, "100000") for _ in range(3)]
    loan = await start_loan(env.client, factory, task_queue, borrower, "100000.00", 3, clock_origin=origin)
    await wait_for_status(loan.handle, "funding")
    if money is not None:
        give_money(factory, borrower, money)
    for investor, share in zip(investors, ("50000.00", "30000.00", "20000.00")):
        await invest(loan.handle, investor, share)
    return loan, origin


async def test_an_outage_across_a_due_date_costs_a_borrower_with_money_nothing(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    env = time_skipping_env
    borrower = make_borrower(session_factory)
    async with running_worker(env.client, settings, session_factory, task_queue):
        # Back 20 days after the first due date: past the grace days, so the old rule charged
        # 17 days of fees to a borrower who had the money all along.
        loan, origin = await loan_the_platform_reaches_late(env, session_factory, task_queue, borrower, 20, "3000")
        late = await until(loan.handle, lambda s: s.installments and s.installments[0].status != "pending", "it")
        first = late.installments[0]
        assert (first.status, first.fee_accrued, first.overdue_since) == ("paid", D(0), None)
        # the schedule starts on the Moscow day the loan's clock started
        assert first.due_date == origin.astimezone(MOSCOW).date() + relativedelta(months=1)
        give_money(session_factory, borrower, "20000")
        result = await loan.handle.result()
    assert result.status == "repaid"
    assert_nothing_late(session_factory, loan.loan_id, borrower, 3)
    await replay_and_maybe_record(loan.handle, "loan_outage_with_money")


async def test_a_long_outage_defaults_nobody_who_had_the_money(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    env = time_skipping_env
    borrower = make_borrower(session_factory)
    async with running_worker(env.client, settings, session_factory, task_queue):
        # Back long after the default threshold of the first installment, all three due: the
        # loan tries to collect everything due before it looks at any threshold.
        days = DEFAULT_AFTER + 100
        loan, _ = await loan_the_platform_reaches_late(env, session_factory, task_queue, borrower, days, "20000")
        result = await loan.handle.result()
    assert result.status == "repaid"
    assert_nothing_late(session_factory, loan.loan_id, borrower, 3)


async def test_an_outage_without_money_counts_lateness_from_the_first_failed_attempt(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    env = time_skipping_env
    borrower = make_borrower(session_factory)
    spender = spends_the_loan_at_once(session_factory)
    async with running_worker(env.client, settings, session_factory, task_queue, stand_ins=[spender]):
        loan, _ = await loan_the_platform_reaches_late(env, session_factory, task_queue, borrower, 20, None)
        late = await until(loan.handle, lambda s: s.installments and s.installments[0].status == "overdue", "it")
        back = late.loan_today
        first = late.installments[0]
        # overdue from the attempt that found the wallet empty, not from the due date: no fee yet
        assert back == first.due_date + timedelta(days=20)
        assert (first.overdue_since, first.fee_accrued) == (back, D(0))
        # (the notice is the activity that follows the state change)
        await until(loan.handle, lambda s: notices(session_factory, loan.loan_id, "installment_overdue"), "notice")
        # Six days later the borrower pays; the fee counts those days only (from the day before
        # the failed attempt, as an on-time attempt counts from the due date): 7 days overdue,
        # 4 beyond the grace days.
        await sleep_until(env, moscow(back, hour=12) + timedelta(days=6))
        give_money(session_factory, borrower, "150000")
        await loan.handle.signal(LoanWorkflow.funds_arrived, FundsArrived(at=await env.get_current_time()))
        paid = await until(loan.handle, lambda s: s.installments[0].status == "paid", "the overdue collection")
        first = paid.installments[0]
        expected = late_fee(first.principal + first.interest, 7)
        assert expected > 0 and (first.fee_accrued, first.paid_fee) == (expected, expected)
        result = await loan.handle.result()
    assert result.status == "repaid"
    rows = schedule_rows(session_factory, loan.loan_id)
    assert [(r.status, r.late_fee_paid) for r in rows] == [("paid", expected), ("paid", D(0)), ("paid", D(0))]
    with session_factory() as session:
        history = payment_history(session, borrower)
        assert (history.late_installments, history.on_time_installments) == (1, 2)
        assert_books_balance(session)
    await replay_and_maybe_record(loan.handle, "loan_outage_without_money")


async def test_money_later_on_the_due_day_is_on_time(time_skipping_env, session_factory, settings, seeded, task_queue):
    env = time_skipping_env
    borrower = make_borrower(session_factory)
    async with running_worker(env.client, settings, session_factory, task_queue):
        loan, _, snapshot = await funded_active_loan(env, session_factory, task_queue, borrower)
        withdraw_everything(session_factory, borrower)
        first_due = snapshot.installments[0].due_date
        # the first attempt runs as the due day starts in Moscow and finds the wallet empty...
        await sleep_until(env, moscow(first_due, hour=2))
        early = await until(loan.handle, lambda s: s.loan_today == first_due, "the due day")
        assert (early.installments[0].status, early.installments[0].paid_principal) == ("pending", D(0))
        # (the attempt ran and took nothing: its record is on the trail)
        tried = await until(loan.handle, lambda s: attempts_that_found_nothing(session_factory, loan.loan_id), "it")
        assert tried.installments[0].status == "pending"
        assert notices(session_factory, loan.loan_id, "installment_overdue") == 0
        # ...and the money that comes at 23:00 Moscow the same day is on time
        await sleep_until(env, moscow(first_due, hour=23))
        give_money(session_factory, borrower, "150000")
        await loan.handle.signal(LoanWorkflow.funds_arrived, FundsArrived(at=await env.get_current_time()))
        paid = await until(loan.handle, lambda s: s.installments[0].status == "paid", "the same-day collection")
        assert (paid.installments[0].fee_accrued, paid.installments[0].overdue_since) == (D(0), None)
        result = await loan.handle.result()
    assert result.status == "repaid"
    assert_nothing_late(session_factory, loan.loan_id, borrower, 3)
    await replay_and_maybe_record(loan.handle, "loan_paid_later_on_the_due_day")


async def test_a_long_outage_without_money_defaults_only_a_threshold_after_the_failed_attempt(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    env = time_skipping_env
    borrower = make_borrower(session_factory)
    spender = spends_the_loan_at_once(session_factory)
    async with running_worker(env.client, settings, session_factory, task_queue, stand_ins=[spender]):
        # back long after the threshold: the old rule defaulted the loan the moment it was back
        days = DEFAULT_AFTER + 100
        loan, _ = await loan_the_platform_reaches_late(env, session_factory, task_queue, borrower, days, None)
        # (each is marked in turn, a notice activity after each)
        late = await until(
            loan.handle, lambda s: s.installments and {i.status for i in s.installments} == {"overdue"}, "all three"
        )
        back = late.loan_today
        assert late.status == "active"
        assert [i.overdue_since for i in late.installments] == [back] * 3
        result = await loan.handle.result()
    assert result.status == "defaulted"
    with session_factory() as session:
        closed_at = session.get(LoanRequest, loan.loan_id).closed_at
        # the threshold, counted from the day before the failed attempt, in Moscow days
        assert closed_at.astimezone(MOSCOW).date() == back - timedelta(days=1) + timedelta(days=DEFAULT_AFTER)
        assert_books_balance(session)
    await replay_and_maybe_record(loan.handle, "loan_defaulted_after_an_outage")


async def test_receipts_equal_the_agreements_to_the_kopek(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    """Three equal investors in 90,000 at 17% over 36 months, the borrower short now and then:
    each receives exactly what their agreement says."""
    from documents.agreements import _loan_facts, investment_shares
    from products.service import create_product

    env = time_skipping_env
    with unit_of_work(session_factory) as session:
        flat = STANDARD.model_copy(update={"code": "flat17", "rates_by_grade": {g: D("17.00") for g in "ABCDE"}})
        create_product(session, flat)
    borrower = make_borrower(session_factory, income="500000")
    investors = [make_investor(session_factory, "30000") for _ in range(3)]
    async with running_worker(env.client, settings, session_factory, task_queue):
        loan = await start_loan(env.client, session_factory, task_queue, borrower, "90000.00", 36, product="flat17")
        await wait_for_status(loan.handle, "funding")
        for investor in investors:
            await invest(loan.handle, investor, "30000.00")
        snapshot = await wait_for_status(loan.handle, "active")
        withdraw_everything(session_factory, borrower)
        # Short on the first due date: a partial payment of 1,000.01, then the rest some days late.
        give_money(session_factory, borrower, "1000.01")
        await sleep_until(env, moscow(snapshot.installments[0].due_date, hour=2) + timedelta(days=1))
        await until(loan.handle, lambda s: s.installments[0].status == "overdue", "the partial payment")
        await sleep_until(env, moscow(snapshot.installments[0].due_date, hour=2) + timedelta(days=9))
        give_money(session_factory, borrower, "150000")
        await loan.handle.signal(LoanWorkflow.funds_arrived, FundsArrived())
        result = await loan.handle.result()
    assert result.status == "repaid"
    with session_factory() as session:
        facts = _loan_facts(session, loan.loan_id)
        agreed = investment_shares(session, facts)
        received = {
            row.investment_id: row
            for row in session.execute(
                select(
                    InvestmentInstallment.investment_id,
                    func.sum(InvestmentInstallment.received_principal).label("principal"),
                    func.sum(InvestmentInstallment.received_interest).label("interest"),
                    func.sum(InvestmentInstallment.received_fee).label("fee"),
                )
                .where(InvestmentInstallment.loan_id == loan.loan_id)
                .group_by(InvestmentInstallment.investment_id)
            )
        }
        investments = session.scalars(select(Investment).where(Investment.loan_id == loan.loan_id)).all()
        fees = sum((r.fee for r in received.values()), D(0))
        assert fees > 0  # the late first installment paid a fee, shared by the investors
        for investment in investments:
            mine = agreed[investment.id]
            principal = sum((r["principal"] for r in mine), D(0))
            interest = sum((r["interest"] for r in mine), D(0))
            assert principal == investment.amount == D("30000.00")
            got = received[investment.id]
            assert (got.principal, got.interest) == (principal, interest)
            # and the wallet saw exactly that: what the agreement says, plus its share of the fee
            assert balance_of(session_factory, investment.investor_id).available == principal + interest + got.fee
        # 38,504.94 / 38,504.94 / 38,504.93: the loan's interest does not split in three evenly;
        # the odd kopek is the agreement's, and the receipts follow it
        totals = sorted((sum((r["total"] for r in agreed[i.id]), D(0)) for i in investments), reverse=True)
        assert totals == [D("38504.94"), D("38504.94"), D("38504.93")]
        assert_books_balance(session)


async def test_a_late_fee_over_several_wake_ups_is_rounded_once(
    time_skipping_env, session_factory, settings, seeded, task_queue
):
    """Overdue installment 1 (34,114.12 of 100,000 at 14% over 3 months) is paid in two
    pieces: 215.86 six days after its due date, the rest eleven days after. The fee accrues
    over two stretches of the span, on the amount overdue in each, and is rounded once:
    34,114.12 x 0.1% x 3 days = 102.34236, then (34,114.12 - 113.52 of interest paid) x 0.1%
    x 5 days = 170.0030; 272.34536 in all, 272.35. Rounded stretch by stretch it would be
    102.34 + 170.00 = 272.34."""
    env = time_skipping_env
    borrower = make_borrower(session_factory)
    async with running_worker(env.client, settings, session_factory, task_queue):
        loan, _, snapshot = await funded_active_loan(env, session_factory, task_queue, borrower)
        withdraw_everything(session_factory, borrower)
        first = snapshot.installments[0]
        assert first.principal + first.interest == D("34114.12")
        await sleep_until(env, moscow(first.due_date, hour=2) + timedelta(days=1))
        await until(loan.handle, lambda s: s.installments[0].status == "overdue", "the failed attempt")
        for day, amount in ((6, "215.86"), (11, "150000")):
            await sleep_until(env, moscow(first.due_date, hour=12) + timedelta(days=day))
            give_money(session_factory, borrower, amount)
            paid_before = (await loan.handle.query(LoanWorkflow.snapshot)).installments[0].paid_interest
            await loan.handle.signal(LoanWorkflow.funds_arrived, FundsArrived(at=await env.get_current_time()))
            await until(
                loan.handle,
                lambda s, before=paid_before: s.installments[0].paid_interest != before or s.installments[0].settled,
                f"the collection of day {day}",
            )
        done = await until(loan.handle, lambda s: s.installments[0].status == "paid", "installment 1 paid")
        item = done.installments[0]
        exact = D("34114.12") * D("0.001") * 3 + (D("34114.12") - D("113.52")) * D("0.001") * 5
        assert exact == D("272.34536")
        assert (item.fee_exact, item.fee_accrued, item.paid_fee) == (exact, D("272.35"), D("272.35"))
        result = await loan.handle.result()
    assert result.status == "repaid"
