"""Ledger throughput beside pgbench's TPC-B-like figure, on the same PostgreSQL, same run.

- single: one two-leg transfer per database transaction (one commit each), 1 and 8 clients
  (8: two processes of four threads, as pgbench's -j 2 runs its 8 clients on two threads; one
  process's GIL would measure Python, not the ledger);
- batched: 100 two-leg transfers per database transaction, posted in one round trip
  (post_transactions);
- multi-leg: one disbursement-shaped transaction of 200 investor legs + 3 per commit;
- pgbench -b tpcb-like with the same client counts, on a pgbench schema in the same database.
The ratio is ledger transactions per second over pgbench transactions per second: both
are "one business transaction touching a few hot rows, committed".
"""

from __future__ import annotations

import multiprocessing
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.orm import Session, sessionmaker

from core.db import make_engine, unit_of_work
from ledger.accounts import ensure_platform_accounts, open_wallet, platform_account, wallet_accounts
from ledger.cash import confirm_deposit, request_deposit
from ledger.postings import Leg, Posting, post_transaction, post_transactions
from ledger.wallets import transfer
from models.users import User
from runner.postgres import pg_binary


@dataclass
class Row:
    name: str
    clients: int
    seconds: float
    transactions: int
    postings: int

    @property
    def tps(self) -> float:
        return self.transactions / self.seconds

    @property
    def pps(self) -> float:
        return self.postings / self.seconds


def _wallets(factory: sessionmaker[Session], count: int, funds: Decimal) -> list[int]:
    ids: list[int] = []
    with unit_of_work(factory) as session:
        ensure_platform_accounts(session)
        operator = User(email="bench-op@example.com", password_hash="x", role="operator")
        session.add(operator)
        session.flush()
        for n in range(count):
            user = User(email=f"bench-{n}@example.com", password_hash="x", role="investor")
            session.add(user)
            session.flush()
            wallet = open_wallet(session, user.id, "investor")
            deposit, _ = request_deposit(session, user.id, funds)
            confirm_deposit(session, deposit.id, operator.id)
            ids.append(wallet_accounts(session, wallet.id)[0].id)
    return ids


def _transfers(factory, accounts: list[int], clients: range, per_client: int, tag: str) -> None:
    def work(client: int) -> None:
        for n in range(per_client):
            # Each client moves money around a ring that crosses the other clients' wallets.
            src = accounts[(client + n) % len(accounts)]
            dst = accounts[(client + n + 1) % len(accounts)]
            with unit_of_work(factory) as session:
                transfer(session, src, dst, Decimal("1.00"), key=f"{tag}:{client}:{n}")

    with ThreadPoolExecutor(len(clients)) as pool:
        list(pool.map(work, clients))


def _single(factory, accounts: list[int], clients: int, count: int, tag: str) -> Row:
    started = time.perf_counter()
    _transfers(factory, accounts, range(clients), count // clients, tag)
    elapsed = time.perf_counter() - started
    done = (count // clients) * clients
    return Row("ledger single (1 transfer/commit)", clients, elapsed, done, 2 * done)


def _single_in_process(
    url: str, accounts: list[int], clients: range, per_client: int, tag: str, start, results
) -> None:
    engine = make_engine(url, pool_size=len(clients))
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    opened = [engine.connect() for _ in clients]  # (every connection open before the clock starts)
    for connection in opened:
        connection.close()
    start.wait(timeout=300)
    began = time.clock_gettime(time.CLOCK_MONOTONIC)  # (one clock for every process of the machine)
    _transfers(factory, accounts, clients, per_client, tag)
    results.put((began, time.clock_gettime(time.CLOCK_MONOTONIC)))
    engine.dispose()


def _single_processes(url: str, accounts: list[int], processes: int, clients: int, count: int, tag: str) -> Row:
    """`clients` connections, as many threads spread over `processes` processes."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(processes + 1), context.Queue()
    per_process, per_client = clients // processes, count // clients
    workers = [
        context.Process(
            target=_single_in_process,
            args=(url, accounts, range(p * per_process, (p + 1) * per_process), per_client, tag, start, results),
        )
        for p in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        start.wait(timeout=300)
    except threading.BrokenBarrierError:
        codes = [worker.exitcode for worker in workers]
        for worker in workers:
            worker.kill()
        raise RuntimeError(f"a ledger bench process did not start (exit codes {codes})") from None
    spans = [results.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            raise RuntimeError(f"a ledger bench process ended with {worker.exitcode}")
    elapsed = max(end for _, end in spans) - min(began for began, _ in spans)
    done = per_client * per_process * processes
    return Row(f"ledger single (1 transfer/commit; {processes} processes)", clients, elapsed, done, 2 * done)


def _batched(factory, accounts: list[int], batches: int, per_batch: int, tag: str) -> Row:
    started = time.perf_counter()
    for b in range(batches):
        with unit_of_work(factory) as session:
            post_transactions(
                session,
                [
                    Posting(
                        key=f"{tag}:{b}:{n}",
                        kind="transfer",
                        legs=[
                            Leg(accounts[n % len(accounts)], Decimal("-1.00")),
                            Leg(accounts[(n + 1) % len(accounts)], Decimal("1.00")),
                        ],
                    )
                    for n in range(per_batch)
                ],
            )
    elapsed = time.perf_counter() - started
    return Row(
        f"ledger batched ({per_batch} transfers/commit)", 1, elapsed, batches * per_batch, 2 * batches * per_batch
    )


def _multi_leg(factory, accounts: list[int], rounds: int, legs: int, tag: str) -> Row:
    with factory() as session:
        fees = platform_account(session, "platform_fees").id
        reserve_fund = platform_account(session, "reserve_fund").id
    sources = accounts[:legs]
    target = accounts[legs]
    started = time.perf_counter()
    for r in range(rounds):
        with unit_of_work(factory) as session:
            post_transaction(
                session,
                key=f"{tag}:{r}",
                kind="disbursement",
                legs=[
                    *(Leg(a, Decimal("-1.00")) for a in sources),
                    Leg(target, Decimal(legs) - Decimal("0.03")),
                    Leg(fees, Decimal("0.01")),
                    Leg(reserve_fund, Decimal("0.02")),
                ],
            )
    elapsed = time.perf_counter() - started
    return Row(f"ledger multi-leg ({legs + 3} legs/commit)", 1, elapsed, rounds, rounds * (legs + 3))


def _pgbench(url: str, clients: int, seconds: int) -> Row:
    out = subprocess.run(
        [
            str(pg_binary("pgbench")),
            "-n",
            "-b",
            "tpcb-like",
            "-c",
            str(clients),
            "-j",
            str(min(clients, 2)),
            "-T",
            str(seconds),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
    transactions = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
    return Row("pgbench tpcb-like", clients, transactions / tps, transactions, 0)


def run_ledger_bench(database_url: str, quick: bool = False) -> tuple[list[Row], list[str]]:
    engine = make_engine(database_url, pool_size=16)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    scale = 1 if quick else 12  # (the whole run: about 10 s each, beside pgbench's 15 s)
    accounts = _wallets(factory, 210, Decimal("1000000.00"))
    rows = [
        _single(factory, accounts, 1, 500 * scale, "b1"),
        _single_processes(database_url, accounts, 2, 8, 1000 * scale, "b8"),
        _batched(factory, accounts, 10 * scale, 100, "bb"),
        _multi_leg(factory, accounts, 20 * scale, 200, "bm"),
    ]
    engine.dispose()
    subprocess.run([str(pg_binary("pgbench")), "-i", "-q", "-s", "8", database_url], check=True, capture_output=True)
    seconds = 5 if quick else 15
    pg1 = _pgbench(database_url, 1, seconds)
    pg8 = _pgbench(database_url, 8, seconds)
    rows += [pg1, pg8]
    notes = [
        f"ledger single / pgbench, 1 client: {rows[0].tps / pg1.tps:.2f}",
        f"ledger single / pgbench, 8 clients: {rows[1].tps / pg8.tps:.2f}",
        f"ledger batched / pgbench, 1 client: {rows[2].tps / pg1.tps:.2f} "
        f"({rows[2].tps / rows[0].tps:.1f}x the single transfer's rate)",
        "a posting is one round trip: the database function ledger_post (migration 0016) locks, checks the key "
        "and inserts; the triggers and constraints of migration 0002 enforce every invariant as before",
        "a batch of postings is one round trip too: ledger_post_many (migration 0017) takes all their locks in the "
        "lock order, then runs ledger_post for each in turn (post_transactions)",
        "the ledger's clients are Python threads (8 clients: two processes of four, as pgbench -j 2 runs its 8 on "
        "two threads); pgbench's are C",
    ]
    return rows, notes
