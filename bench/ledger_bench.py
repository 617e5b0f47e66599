"""Ledger throughput beside pgbench's TPC-B-like figure, on the same PostgreSQL, same run.

- single: one two-leg transfer per database transaction (one commit each), 1 and 8 clients;
- batched: 100 two-leg transfers per database transaction;
- multi-leg: one disbursement-shaped transaction of 200 investor legs + 3 per commit;
- pgbench -b tpcb-like with the same client counts, on a pgbench schema in the same database.
The ratio is ledger transactions per second over pgbench transactions per second: both
are "one business transaction touching a few hot rows, committed".
"""

from __future__ import annotations

import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.orm import Session, sessionmaker

from core.db import make_engine, unit_of_work
from ledger.accounts import ensure_platform_accounts, open_wallet, platform_account, wallet_accounts
from ledger.cash import confirm_deposit, request_deposit
from ledger.postings import Leg, post_transaction
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


def _single(factory, accounts: list[int], clients: int, count: int, tag: str) -> Row:
    def work(client: int) -> None:
        per_client = count // clients
        for n in range(per_client):
            # Each client moves money around a ring that crosses the other clients' wallets.
            src = accounts[(client + n) % len(accounts)]
            dst = accounts[(client + n + 1) % len(accounts)]
            with unit_of_work(factory) as session:
                transfer(session, src, dst, Decimal("1.00"), key=f"{tag}:{client}:{n}")

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(work, range(clients)))
    elapsed = time.perf_counter() - started
    done = (count // clients) * clients
    return Row("ledger single (1 transfer/commit)", clients, elapsed, done, 2 * done)


def _batched(factory, accounts: list[int], batches: int, per_batch: int, tag: str) -> Row:
    started = time.perf_counter()
    for b in range(batches):
        with unit_of_work(factory) as session:
            for n in range(per_batch):
                src, dst = accounts[n % len(accounts)], accounts[(n + 1) % len(accounts)]
                transfer(session, src, dst, Decimal("1.00"), key=f"{tag}:{b}:{n}")
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
    scale = 1 if quick else 4
    accounts = _wallets(factory, 210, Decimal("1000000.00"))
    rows = [
        _single(factory, accounts, 1, 500 * scale, "b1"),
        _single(factory, accounts, 8, 1000 * scale, "b8"),
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
        "the ledger's clients are threads of one Python process (one GIL); pgbench's are C",
    ]
    return rows, notes
