"""post_transactions: several postings in one round trip answer, store and refuse exactly as
post_transaction called for each in turn would (ledger_post_many, migration 0017)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from core.db import unit_of_work
from core.errors import IdempotencyConflict, InsufficientFunds, InvalidRequest, NotFound, PlatformError
from ledger.postings import Leg, Posting, post_transaction, post_transactions
from models.ledger import LedgerPosting, LedgerTransaction
from models.records import AuditRecord
from tests.ledger_helpers import account_ids, assert_books_balance, balances, fund, new_wallet, snapshot
from tests.loan_helpers import active_loan_in_db, make_borrower, make_investor

D = Decimal


@pytest.fixture
def wallets(session_factory):
    """Three wallets' available accounts, with 100.00, 50.00 and nothing."""
    with unit_of_work(session_factory) as session:
        found = [new_wallet(session) for _ in range(3)]
        fund(session, found[0], D("100.00"))
        fund(session, found[1], D("50.00"))
        return [account_ids(session, wallet)[0] for wallet in found]


def move(key: str, source: int, target: int, amount: str) -> Posting:
    return Posting(key=key, kind="transfer", legs=[Leg(source, -D(amount)), Leg(target, D(amount))])


def stored(session, key: str) -> list[tuple[int, Decimal]] | None:
    found = session.scalar(select(LedgerTransaction.id).where(LedgerTransaction.idempotency_key == key))
    if found is None:
        return None
    rows = session.execute(
        select(LedgerPosting.account_id, LedgerPosting.amount)
        .where(LedgerPosting.transaction_id == found)
        .order_by(LedgerPosting.id)
    )
    return [tuple(row) for row in rows]


def test_a_batch_posts_each_transaction_under_its_own_key_in_order(session_factory, wallets):
    a, b, c = wallets
    with unit_of_work(session_factory) as session:
        # The second needs the money the first brings: order matters.
        posted = post_transactions(session, [move("t1", a, c, "100.00"), move("t2", c, b, "100.00")])
    assert [p.idempotency_key for p in posted] == ["t1", "t2"]
    assert not any(p.replayed for p in posted)
    with session_factory() as session:
        assert stored(session, "t1") == [(a, D("-100.00")), (c, D("100.00"))]
        assert stored(session, "t2") == [(b, D("100.00")), (c, D("-100.00"))]
        ids = {
            session.scalar(select(LedgerTransaction.id).where(LedgerTransaction.idempotency_key == k))
            for k in ("t1", "t2")
        }
        assert ids == {p.id for p in posted}
        assert_books_balance(session)


def test_a_batch_again_is_replayed_and_changes_nothing(session_factory, wallets):
    a, b, c = wallets
    batch = [move("r1", a, b, "10.00"), move("r2", b, c, "20.00")]
    with unit_of_work(session_factory) as session:
        first = post_transactions(session, batch)
    with session_factory() as session:
        before = snapshot(session)
    with unit_of_work(session_factory) as session:
        again = post_transactions(session, batch)
        # The same key twice in one batch: the second is the first's replay.
        twice = post_transactions(session, [move("r3", a, b, "1.00"), move("r3", a, b, "1.00")])
    assert [p.id for p in again] == [p.id for p in first]
    assert all(p.replayed for p in again)
    assert [p.replayed for p in twice] == [False, True] and twice[0].id == twice[1].id
    with session_factory() as session:
        after = snapshot(session)
        assert after["transactions"] == before["transactions"] + 1
        assert_books_balance(session)


def test_a_batch_stops_at_the_first_refusal_and_keeps_what_came_before(session_factory, wallets):
    a, b, c = wallets
    with session_factory() as session:
        before = snapshot(session)
    with unit_of_work(session_factory) as session:
        with pytest.raises(InsufficientFunds, match="50.00 there, 50.01 needed") as refused:
            post_transactions(session, [move("s1", a, c, "5.00"), move("s2", b, c, "50.01"), move("s3", a, c, "1.00")])
        # The refusal says what stays posted: committing now commits it.
        assert refused.value.refused_at == 1
        assert [p.idempotency_key for p in refused.value.posted_before] == ["s1"]
        # The caller's transaction goes on, as after post_transaction's refusal.
        assert stored(session, "s1") is not None
        assert stored(session, "s2") is None and stored(session, "s3") is None
    with session_factory() as session:
        after = snapshot(session)
        assert after["transactions"] == before["transactions"] + 1
        assert_books_balance(session)
    with unit_of_work(session_factory) as session:
        # The refused key was not spent.
        assert post_transactions(session, [move("s2", b, c, "50.00")])[0].replayed is False
    with pytest.raises(IdempotencyConflict), unit_of_work(session_factory) as session:
        post_transactions(session, [move("s4", a, c, "1.00"), move("s1", a, c, "5.01")])
    with session_factory() as session:
        assert stored(session, "s4") is None  # (rolled back with the caller's transaction)


def test_a_batch_refuses_bad_input_before_anything_is_sent(session_factory, wallets):
    a, b, _ = wallets
    with session_factory() as session:
        before = snapshot(session)
        with pytest.raises(InvalidRequest, match="more than two decimals"):
            post_transactions(session, [move("v1", a, b, "1.00"), move("v2", a, b, "1.001")])
        with pytest.raises(InvalidRequest, match="unknown ledger account"):
            post_transactions(session, [move("v3", a, 987654321, "1.00")])
        assert snapshot(session) == before
        assert post_transactions(session, []) == []


def test_a_batch_of_a_loans_movements_locks_the_loan_and_appends_to_its_trail(session_factory, seeded, wallets):
    a, b, _ = wallets
    borrower = make_borrower(session_factory)
    investors = [make_investor(session_factory, "0") for _ in range(2)]
    loan_id = active_loan_in_db(session_factory, borrower, investors)
    postings = [
        Posting(key=f"loan-move-{n}", kind="transfer", legs=[Leg(a, -D("1.00")), Leg(b, D("1.00"))], loan_id=loan_id)
        for n in range(2)
    ]
    with unit_of_work(session_factory) as session:
        posted = post_transactions(session, postings)
    with session_factory() as session:
        trail = session.execute(
            select(AuditRecord.event_key, AuditRecord.details)
            .where(AuditRecord.loan_id == loan_id)
            .order_by(AuditRecord.id)
        ).all()
        assert [row.event_key for row in trail[-2:]] == ["ledger:loan-move-0", "ledger:loan-move-1"]
        # Each record names its own ledger transaction and legs.
        assert [row.details["transaction_id"] for row in trail[-2:]] == [str(p.id) for p in posted]
        assert all(len(row.details["legs"]) == 2 for row in trail[-2:])
        loans = session.scalars(
            select(LedgerTransaction.loan_id).where(LedgerTransaction.id.in_([p.id for p in posted]))
        ).all()
        assert loans == [loan_id, loan_id]
    with session_factory() as session:
        # Two loans' rows in one batch would break the lock order (one loan's row at a time).
        other = Posting("other-loan", "transfer", [Leg(a, -D("1")), Leg(b, D("1"))], uuid.uuid4())
        with pytest.raises(InvalidRequest, match="one loan at most"):
            post_transactions(session, [postings[0], other])
    with unit_of_work(session_factory) as session:
        with pytest.raises(NotFound):
            post_transactions(
                session, [Posting("nowhere", "transfer", [Leg(a, -D("1")), Leg(b, D("1"))], uuid.uuid4())]
            )


amounts = st.decimals(min_value=D("0.01"), max_value=D("120.00"), places=2)
UNKNOWN_ACCOUNT = 987654321
batches = st.lists(
    # (target 3: an account that does not exist)
    st.tuples(st.integers(0, 2), st.integers(0, 3), amounts, st.integers(0, 5)).filter(lambda t: t[0] != t[1]),
    min_size=1,
    max_size=8,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=batches)
def test_a_batch_is_the_same_as_posting_one_by_one(session_factory, wallets, batch):
    """Random transfers (some short of money, some keys repeated with other content): the batch
    answers and stores what post_transaction in turn does, from the same state."""
    accounts = [*wallets, UNKNOWN_ACCOUNT]
    postings = [move(f"p{key}", accounts[s], accounts[t], f"{amount}") for s, t, amount, key in batch]

    def outcome(run) -> tuple[object, object, dict[str, object]]:
        with session_factory() as session:
            try:
                answers: object = [(p.idempotency_key, p.replayed) for p in run(session)]
            except PlatformError as refused:
                answers = (type(refused).__name__, refused.detail, refused.extra, refused.refused_at)
            stored_rows = {f"p{n}": stored(session, f"p{n}") for n in range(6)}
            state = snapshot(session)
            state.pop("last_posting")  # (a sequence: the first run's ids are not given back)
            session.rollback()
        return answers, stored_rows, state

    def one_by_one(session):
        done = []
        for index, p in enumerate(postings):
            try:
                done.append(post_transaction(session, key=p.key, kind=p.kind, legs=p.legs))
            except PlatformError as refused:
                refused.refused_at = index
                raise
        return done

    assert outcome(lambda session: post_transactions(session, postings)) == outcome(one_by_one)


def test_crossing_batches_at_the_same_time_do_not_deadlock(session_factory, wallets):
    """Two clients post batches over the same accounts in opposite orders, many times at once:
    every lock is taken up front in one order, so neither waits on the other in a cycle."""
    import threading

    a, b, c = wallets
    batches = 40
    # y's batch takes 0.02 out of c and x's puts it back: c holds enough for all of y's batches
    # before any of x's, so no interleaving of the two threads can run a wallet short (a refusal
    # would end a client early and the test would prove less).
    with unit_of_work(session_factory) as session:
        post_transactions(session, [move("seed-c", a, c, str(D("0.02") * batches))])
    with session_factory() as session:
        before = balances(session)
    errors: list[BaseException] = []
    both_ready = threading.Barrier(2)  # (the two clients start posting together)

    def client(name: str, order: list[tuple[int, int]]) -> None:
        try:
            both_ready.wait(timeout=30)
            for n in range(batches):
                with unit_of_work(session_factory) as session:
                    post_transactions(
                        session, [move(f"{name}:{n}:{k}", src, dst, "0.01") for k, (src, dst) in enumerate(order)]
                    )
        except BaseException as exc:  # (a deadlock would be DeadlockDetected, raised by PostgreSQL)
            errors.append(exc)

    threads = [
        threading.Thread(target=client, args=("x", [(a, c), (b, c), (a, b)])),
        threading.Thread(target=client, args=("y", [(c, b), (b, a), (c, a)])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with session_factory() as session:
        assert_books_balance(session)
        # x's batches move 0.02 each from a to c and y's move it back (b gives and gets 0.01 in
        # both): after as many of each, every account's balance is where it began, and every
        # transfer of both clients is posted.
        assert balances(session) == before
        keys = session.scalars(
            select(LedgerTransaction.idempotency_key).where(
                LedgerTransaction.idempotency_key.like("x:%") | LedgerTransaction.idempotency_key.like("y:%")
            )
        ).all()
    assert sorted(keys) == sorted(f"{name}:{n}:{k}" for name in "xy" for n in range(batches) for k in range(3))
