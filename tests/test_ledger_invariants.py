"""The database enforces the ledger's invariants; post_transaction adds idempotency."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from core.db import unit_of_work
from core.errors import IdempotencyConflict, InsufficientFunds, InvalidRequest
from ledger.accounts import escrow_account, platform_account
from ledger.postings import Leg, _bigint_array, _numeric_array, post_transaction
from ledger.reports import reconciliation, trial_balance
from ledger.wallets import release, reserve, transfer, wallet_balance
from models.ledger import LedgerAccount, LedgerTransaction
from tests.ledger_helpers import account_ids, assert_books_balance, fund, new_wallet, snapshot, verdict_of

D = Decimal


@pytest.fixture
def funded(session_factory):
    with unit_of_work(session_factory) as session:
        wallet = new_wallet(session)
        fund(session, wallet, D("1000.00"))
        return wallet


def test_postings_are_append_only(session_factory, funded):
    for statement in (
        "UPDATE ledger_postings SET amount = amount * 2",
        "DELETE FROM ledger_postings",
        "TRUNCATE ledger_postings CASCADE",
        "UPDATE ledger_transactions SET kind = 'other'",
        "DELETE FROM ledger_transactions",
    ):
        with session_factory() as session:
            with pytest.raises(DBAPIError, match="append-only"):
                session.execute(text(statement))
                session.commit()


def test_balances_change_only_through_postings(session_factory, funded):
    with session_factory() as session:
        with pytest.raises(DBAPIError, match="only through postings"):
            session.execute(text("UPDATE ledger_accounts SET balance = balance + 1000000"))
            session.commit()
    with session_factory() as session:
        with pytest.raises(DBAPIError, match="never deleted"):
            session.execute(text("DELETE FROM ledger_accounts WHERE kind = 'reserve_fund'"))
            session.commit()
    with session_factory() as session:
        with pytest.raises(DBAPIError, match="opens at zero"):
            session.execute(text("INSERT INTO ledger_accounts (code, kind, balance) VALUES ('x', 'platform_fees', 5)"))
            session.commit()


def test_unbalanced_postings_are_refused_at_commit_even_in_raw_sql(session_factory, funded):
    with session_factory() as session:
        available, _ = account_ids(session, funded)
        tx = uuid.uuid4()
        session.execute(
            text(
                "INSERT INTO ledger_transactions (id, idempotency_key, content_hash, kind) "
                "VALUES (:id, 'raw', 'h', 'raw')"
            ),
            {"id": tx},
        )
        session.execute(
            text(
                "INSERT INTO ledger_postings (transaction_id, account_id, amount, balance_after, "
                "account_version) VALUES (:tx, :acc, 5, 0, 0)"
            ),
            {"tx": tx, "acc": available},
        )
        with pytest.raises(IntegrityError, match="does not balance"):
            session.commit()
    with session_factory() as session:
        session.execute(
            text(
                "INSERT INTO ledger_transactions (id, idempotency_key, content_hash, kind) "
                "VALUES (:id, 'empty', 'h', 'raw')"
            ),
            {"id": uuid.uuid4()},
        )
        with pytest.raises(IntegrityError, match="at least two"):
            session.commit()
    with session_factory() as session:
        assert_books_balance(session)


def test_no_posting_can_join_a_committed_transaction(session_factory, funded):
    """Otherwise a later pair of postings could be slipped into a balanced transaction."""
    with session_factory() as session:
        available, reserved = account_ids(session, funded)
        old = session.scalars(select(LedgerTransaction.id)).first()
        with pytest.raises(DBAPIError, match="while it is being created"):
            session.execute(
                text(
                    "INSERT INTO ledger_postings (transaction_id, account_id, amount, balance_after, "
                    "account_version) VALUES (:tx, :acc, 5, 0, 0)"
                ),
                {"tx": old, "acc": available},
            )


def test_wallet_cannot_go_negative_even_in_raw_sql(session_factory, funded):
    with session_factory() as session:
        available, reserved = account_ids(session, funded)
        tx = uuid.uuid4()
        session.execute(
            text(
                "INSERT INTO ledger_transactions (id, idempotency_key, content_hash, kind) "
                "VALUES (:id, 'raw2', 'h', 'raw')"
            ),
            {"id": tx},
        )
        with pytest.raises(IntegrityError, match="balance_nonnegative"):
            session.execute(
                text(
                    "INSERT INTO ledger_postings (transaction_id, account_id, amount, balance_after, "
                    "account_version) VALUES (:tx, :acc, -1000.01, 0, 0)"
                ),
                {"tx": tx, "acc": available},
            )


def test_same_key_same_content_returns_first_result_and_changes_nothing(session_factory, funded):
    with unit_of_work(session_factory) as session:
        first = reserve(session, funded.id, D("100.00"), key="invest:1")
    with session_factory() as session:
        before = snapshot(session)
    with unit_of_work(session_factory) as session:
        again = reserve(session, funded.id, D("100.00"), key="invest:1")
    assert again.id == first.id
    with session_factory() as session:
        assert snapshot(session) == before
        assert wallet_balance(session, funded.id).reserved == D("100.00")


def test_same_key_other_content_is_an_error(session_factory, funded):
    with unit_of_work(session_factory) as session:
        reserve(session, funded.id, D("100.00"), key="invest:2")
    with unit_of_work(session_factory) as session:
        with pytest.raises(IdempotencyConflict):
            reserve(session, funded.id, D("100.01"), key="invest:2")
        with pytest.raises(IdempotencyConflict):
            release(session, funded.id, D("100.00"), key="invest:2")


def test_insufficient_funds_stores_nothing_and_the_key_can_be_retried(session_factory, funded):
    with session_factory() as session:
        before = snapshot(session)
    with unit_of_work(session_factory) as session:
        with pytest.raises(InsufficientFunds) as info:
            reserve(session, funded.id, D("1000.01"), key="invest:3")
        # the caller's transaction is still usable after the failed posting
        assert session.scalar(select(LedgerTransaction).where(LedgerTransaction.idempotency_key == "invest:3")) is None
    assert "1000.00 there, 1000.01 needed" in info.value.detail
    with session_factory() as session:
        assert snapshot(session) == before
    with unit_of_work(session_factory) as session:
        fund(session, funded, D("0.01"))
    with unit_of_work(session_factory) as session:
        done = reserve(session, funded.id, D("1000.01"), key="invest:3")
    with session_factory() as session:
        assert done.kind == "reserve"
        balance = wallet_balance(session, funded.id)
        assert (balance.available, balance.reserved) == (D("0.00"), D("1000.01"))
        assert_books_balance(session)


@pytest.mark.parametrize(
    "legs_spec, message",
    [
        ([("a", "0")], "at least two legs"),
        ([("a", "-1.00"), ("b", "0")], "zero"),
        ([("a", "-1.005"), ("b", "1.005")], "more than two decimals"),
        ([("a", "-1.00"), ("b", "2.00")], "sum to"),
        ([("a", "-NaN"), ("b", "1")], "finite"),
        ([("a", "-99999999999999.00"), ("b", "99999999999999.00")], "beyond"),
    ],
)
def test_bad_legs_are_refused_before_anything_is_posted(session_factory, funded, legs_spec, message):
    with session_factory() as session:
        available, reserved = account_ids(session, funded)
        ids = {"a": available, "b": reserved}
        before = snapshot(session)
        with pytest.raises(InvalidRequest, match=message):
            post_transaction(
                session, key="bad", kind="test", legs=[Leg(ids[name], D(amount)) for name, amount in legs_spec]
            )
        assert snapshot(session) == before


def test_unknown_account_is_refused(session_factory, funded):
    with session_factory() as session:
        available, _ = account_ids(session, funded)
        with pytest.raises(InvalidRequest, match="unknown ledger account"):
            transfer(session, available, 987654321, D("1.00"), key="nowhere")


def test_multi_leg_disbursement_is_all_or_nothing(session_factory):
    with unit_of_work(session_factory) as session:
        investors = [new_wallet(session) for _ in range(5)]
        borrower = new_wallet(session, "borrower")
        for wallet in investors:
            fund(session, wallet, D("20000.00"))
            reserve(session, wallet.id, D("20000.00"), key=f"loan:L1:investment:{wallet.id}:reserve")

    def disbursement_legs(session, shortfall: Decimal = D(0)):
        legs = [Leg(account_ids(session, w)[1], -D("20000.00")) for w in investors]
        legs[-1] = Leg(legs[-1].account_id, legs[-1].amount - shortfall)
        total = D("100000.00") + shortfall
        fee, reserve_fund = D("1000.00"), D("2000.00")
        legs += [
            Leg(account_ids(session, borrower)[0], total - fee - reserve_fund),
            Leg(platform_account(session, "platform_fees").id, fee),
            Leg(platform_account(session, "reserve_fund").id, reserve_fund),
        ]
        return legs

    with session_factory() as session:
        before = snapshot(session)
        with pytest.raises(InsufficientFunds):
            # the last investor's reservation is 0.01 short: nobody's money may move
            post_transaction(
                session, key="loan:L1:disburse", kind="disbursement", legs=disbursement_legs(session, D("0.01"))
            )
        session.rollback()
        assert snapshot(session) == before
    with unit_of_work(session_factory) as session:
        post_transaction(session, key="loan:L1:disburse", kind="disbursement", legs=disbursement_legs(session))
    with session_factory() as session:
        assert wallet_balance(session, borrower.id).available == D("97000.00")
        assert all(wallet_balance(session, w.id).balance == 0 for w in investors)
        assert platform_account(session, "reserve_fund").balance == D("2000.00")
        assert platform_account(session, "platform_fees").balance == D("1000.00")
        assert_books_balance(session)


def test_replaying_every_operation_changes_nothing(session_factory):
    """Run a day of operations, then run each again with its key: the database is unchanged."""
    from ledger.cash import confirm_deposit, pay_withdrawal, reject_withdrawal, request_withdrawal
    from tests.ledger_helpers import new_user

    calls = []
    with unit_of_work(session_factory) as session:
        a, b = new_wallet(session), new_wallet(session, "borrower")
        operator = new_user(session, "operator")
        fund(session, a, D("5000.00"))
        fund(session, b, D("700.00"))
        a_av, a_res = account_ids(session, a)
        b_av, _ = account_ids(session, b)
        fee = platform_account(session, "platform_fees").id
        w1, _ = request_withdrawal(session, a.user_id, D("300.00"), client_key="w1")
        w2, _ = request_withdrawal(session, a.user_id, D("200.00"), client_key="w2")
        calls = [
            lambda s: reserve(s, a.id, D("1000.00"), key="loan:X:investment:1:reserve"),
            lambda s: release(s, a.id, D("400.00"), key="loan:X:investment:1:release"),
            lambda s: transfer(s, b_av, a_av, D("123.45"), key="loan:X:installment:1:collect"),
            lambda s: post_transaction(
                s, key="loan:X:fees", kind="fee", legs=[Leg(a_res, D("-10.00")), Leg(fee, D("10.00"))]
            ),
            lambda s: request_withdrawal(s, a.user_id, D("300.00"), client_key="w1"),
            lambda s: pay_withdrawal(s, w1.id, operator.id),
            lambda s: reject_withdrawal(s, w2.id, operator.id, "wrong account"),
        ]
        for call in calls:
            call(session)
        deposits = session.execute(text("SELECT id FROM deposits")).scalars().all()
    with session_factory() as session:
        before = snapshot(session)
    with unit_of_work(session_factory) as session:
        for call in calls:
            call(session)
        for deposit_id in deposits:
            confirm_deposit(session, deposit_id, operator.id)
    with session_factory() as session:
        assert snapshot(session) == before
        assert_books_balance(session)


@pytest.mark.parametrize(
    "legs_of",
    [
        # every leg a str: the shape that once went to the database as text and was cast
        lambda a, b, c: [Leg(f"{a},{c}", D("-1.00")), Leg(str(b), D("1.00"))],
        lambda a, b, c: [Leg(True, D("-1.00")), Leg(b, D("1.00"))],
        lambda a, b, c: [Leg(float(a), D("-1.00")), Leg(b, D("1.00"))],
        lambda a, b, c: [Leg(2**63, D("-1.00")), Leg(b, D("1.00"))],
        lambda a, b, c: [Leg(-(2**63) - 1, D("-1.00")), Leg(b, D("1.00"))],
    ],
    ids=["accounts-in-a-str", "bool", "float", "beyond-bigint", "below-bigint"],
)
def test_a_leg_whose_account_is_not_an_integer_id_is_refused(session_factory, funded, legs_of):
    """The account ids go to the database as an array literal: a str could add accounts of its
    own, a bool or a float is no id, and an id beyond bigint is none of the ledger's."""
    with session_factory() as session:
        available, reserved = account_ids(session, funded)
        fees = platform_account(session, "platform_fees").id
        before = snapshot(session)
        with pytest.raises(InvalidRequest, match="integer account id"):
            post_transaction(session, key="bad-id", kind="test", legs=legs_of(available, reserved, fees))
        assert snapshot(session) == before


def test_a_decimal_of_another_kind_or_beyond_any_account_is_refused(session_factory, funded):
    class Shifty(Decimal):
        def __format__(self, spec):
            return "1,1"

    with session_factory() as session:
        available, reserved = account_ids(session, funded)
        before = snapshot(session)
        with pytest.raises(InvalidRequest, match="finite Decimals"):
            post_transaction(
                session, key="shifty", kind="test", legs=[Leg(available, Shifty("-1")), Leg(reserved, Shifty("1"))]
            )
        # (refused as too large, not by the rounding to kopeks that such a number breaks)
        with pytest.raises(InvalidRequest, match="beyond"):
            post_transaction(
                session, key="huge", kind="test", legs=[Leg(available, D("-1E+30")), Leg(reserved, D("1E+30"))]
            )
        assert snapshot(session) == before


def test_amounts_travel_as_two_decimals_whatever_their_notation():
    assert _numeric_array([D("1E+2"), D("-0.5"), D("100.000"), D("-1234567890123.45")]) == (
        "{100.00,-0.50,100.00,-1234567890123.45}"
    )
    assert _bigint_array([3, 12, 9223372036854775807]) == "{3,12,9223372036854775807}"


def test_the_same_amount_in_another_notation_replays_its_key(session_factory, funded):
    """What a key promises is the amount, not how it was written: 1E+2 is 100.00."""
    with unit_of_work(session_factory) as session:
        available, reserved = account_ids(session, funded)
        first = transfer(session, available, reserved, D("100.00"), key="notation-replay")
    with unit_of_work(session_factory) as session:
        again = transfer(session, available, reserved, D("1E+2"), key="notation-replay")
    assert again.replayed and again.id == first.id


def test_amounts_are_stored_exactly_whatever_their_notation(session_factory, funded):
    """Amounts travel as text (two decimals): exponents, one decimal and thirteen digits before
    the point are stored as the Decimal they are."""
    cases = [D("1E+2"), D("0.5"), D("100.000"), D("0.01"), D("1234567890123.45")]
    with unit_of_work(session_factory) as session:
        available, _ = account_ids(session, funded)
        bank = platform_account(session, "nominal").id  # (may go negative: money from outside)
        posted = [transfer(session, bank, available, amount, key=f"notation:{n}") for n, amount in enumerate(cases)]
    with session_factory() as session:
        for amount, done in zip(cases, posted, strict=True):
            legs = {
                row.account_id: row.amount
                for row in session.execute(
                    text("SELECT account_id, amount FROM ledger_postings WHERE transaction_id = :id"), {"id": done.id}
                )
            }
            assert legs == {bank: -amount, available: amount}
            assert str(legs[available]) == f"{amount:.2f}"
        assert_books_balance(session)


def test_the_reconciliation_reads_one_row_and_finds_the_accounts_off_their_postings(session_factory, engine, funded):
    """The hourly check (reconciliation) gives the trial balance's verdict, computed by the
    database: one row back however many accounts there are, so the worker's memory does not
    grow with the platform's wallets. Mismatched accounts come in account id order, as the
    trial balance lists them, an account without postings among them."""
    with unit_of_work(session_factory) as session:
        for _ in range(3):
            transfer(session, *account_ids(session, funded), D("1.00"), key=f"move:{uuid.uuid4()}")
            new_wallet(session)
        # Two accounts to break: one with postings (a wallet's), one without, whose codes sort
        # the other way round from their ids: an escrow opened after the wallet ("escrow:..."
        # before "wallet:...").
        moved = session.get_one(LedgerAccount, account_ids(session, funded)[0])
        idle = escrow_account(session, "plan", uuid.uuid4())
        assert moved.id < idle.id and moved.code > idle.code
    rows_read: list[int] = []

    def count_rows(_conn, cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            rows_read.append(cursor.rowcount)

    def reconciled(session) -> tuple[bool, str, int, list[str]]:
        event.listen(engine, "after_cursor_execute", count_rows)
        try:
            result = reconciliation(session)
        finally:
            event.remove(engine, "after_cursor_execute", count_rows)
        return verdict_of(result)

    with session_factory() as session:
        accounts = session.scalar(select(func.count()).select_from(LedgerAccount))
        assert accounts >= 9
        assert reconciled(session) == verdict_of(trial_balance(session)) == (True, "0.00", accounts, [])
        assert rows_read == [1]
    # Someone with the owner's rights moves two balances past their postings.
    with unit_of_work(session_factory) as session:
        session.execute(text("ALTER TABLE ledger_accounts DISABLE TRIGGER trg_ledger_accounts_guard"))
        session.execute(
            text("UPDATE ledger_accounts SET balance = balance + 5 WHERE id IN (:a, :b)"), {"a": moved.id, "b": idle.id}
        )
        session.execute(text("ALTER TABLE ledger_accounts ENABLE TRIGGER trg_ledger_accounts_guard"))
    by_id = [code for _, code in sorted([(moved.id, moved.code), (idle.id, idle.code)])]
    with session_factory() as session:
        assert reconciled(session) == verdict_of(trial_balance(session)) == (False, "10.00", accounts, by_id)
        assert by_id != sorted(by_id)
