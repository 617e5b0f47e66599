"""Many concurrent operations on one hot wallet, each in its own connection and transaction."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from core.db import unit_of_work
from core.errors import InsufficientFunds
from ledger.wallets import reserve, transfer, wallet_balance
from tests.ledger_helpers import account_ids, assert_books_balance, fund, new_wallet

D = Decimal
THREADS = 8


def test_contended_reservations_never_overdraw(session_factory):
    with unit_of_work(session_factory) as session:
        hot = new_wallet(session)
        fund(session, hot, D("500.00"))

    def attempt(n: int) -> str:
        try:
            with unit_of_work(session_factory) as session:
                reserve(session, hot.id, D("10.00"), key=f"hot:reserve:{n}")
            return "ok"
        except InsufficientFunds:
            return "short"

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(attempt, range(80)))
    assert outcomes.count("ok") == 50 and outcomes.count("short") == 30
    with session_factory() as session:
        balance = wallet_balance(session, hot.id)
        assert (balance.available, balance.reserved) == (D("0.00"), D("500.00"))
        assert_books_balance(session)


def test_crossing_transfers_are_exact_and_never_deadlock(session_factory):
    """Transfers both ways between a hot wallet and others (the classic deadlock shape),
    each key sent twice at once: every key applies exactly once, no error reaches callers."""
    with unit_of_work(session_factory) as session:
        hot = new_wallet(session)
        others = [new_wallet(session) for _ in range(THREADS)]
        fund(session, hot, D("1000.00"))
        for wallet in others:
            fund(session, wallet, D("100.00"))
        hot_available = account_ids(session, hot)[0]
        other_available = [account_ids(session, w)[0] for w in others]

    operations = []
    for n in range(64):
        other = other_available[n % THREADS]
        if n % 2:
            operations.append((f"out:{n}", hot_available, other, D("3.00")))
        else:
            operations.append((f"in:{n}", other, hot_available, D("2.00")))
    doubled = operations + operations
    random.Random(7).shuffle(doubled)

    def run(op) -> None:
        key, source, target, amount = op
        with unit_of_work(session_factory) as session:
            transfer(session, source, target, amount, key=key)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(run, doubled))  # any exception (deadlock included) fails the test

    with session_factory() as session:
        assert wallet_balance(session, hot.id).available == D("1000.00") - 32 * D("3.00") + 32 * D("2.00")
        for index, wallet in enumerate(others):
            expected = D("100.00")
            for _, source, target, amount in operations:
                expected += amount if target == other_available[index] else 0
                expected -= amount if source == other_available[index] else 0
            assert wallet_balance(session, wallet.id).available == expected
        assert_books_balance(session)
