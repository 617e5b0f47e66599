"""`make demo` tells its story: started as `make demo` starts it (its own PostgreSQL, Temporal
dev server, worker and API, on free ports and a throwaway data folder), it narrates each of its
four loans as they live, then prints a summary whose figures add up, and the trial balance;
the API's access log of its own polling is not printed. Stopped with Ctrl-C (SIGINT), as a
newcomer stops it; anything still running with its data folder is then killed by pid."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

from runner.ports import free_port
from tests.process_tree import processes_using

ROOT = Path(__file__).resolve().parent.parent
D = Decimal


def _run_demo(tmp_path: Path) -> list[str]:
    data_dir = tmp_path / "demo-data"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS", "ENVIRONMENT")}
    env.update(
        PYTHONPATH=str(ROOT),
        DATA_DIR=str(data_dir),
        API_PORT=str(free_port()),
        TEMPORAL_DEV_PORT=str(free_port()),
        TEMPORAL_UI_PORT=str(free_port()),
        EMBEDDED_POSTGRES_PORT=str(free_port()),
    )
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "runner.demo"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 420
        while "trial balance total" not in (text := log.read_text(errors="replace")):
            assert demo.poll() is None and "a scenario failed" not in text, text[-4000:]
            assert time.monotonic() < deadline, text[-4000:]
            time.sleep(0.5)
        time.sleep(1)  # (the lines after the trial balance)
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        assert demo.wait(timeout=90) == 0, log.read_text()[-4000:]
        # Ctrl-C stopped everything the demo started, by itself
        assert processes_using(data_dir) == []
        assert not (data_dir / "postgres" / "pgdata" / "postmaster.pid").exists()
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        for pid in processes_using(data_dir):
            os.kill(pid, signal.SIGKILL)
    return log.read_text(errors="replace").splitlines()


def test_the_demo_narrates_each_loan_and_its_figures_add_up(tmp_path):
    lines = _run_demo(tmp_path)
    story = [line.removeprefix("[make demo] ") for line in lines if line.startswith("[make demo] ")]

    def told(label: str) -> list[str]:
        return [line[12:] for line in story if line.startswith(f"{label:<11} ")]

    # the story, as it happens
    def fees_told(label: str) -> list[Decimal]:
        return [
            D(m.group(1).replace(",", "")) for line in told(label) if (m := re.search(r"late fee ([\d,]+\.\d\d)", line))
        ]

    repaid = told("repaid")
    assert sum("collected" in line for line in repaid) == 12 and "repaid" in repaid
    late = told("late, paid")
    assert any("overdue" in line for line in late)
    assert fees_told("late, paid")[0] > 0  # the first installment, collected weeks late
    defaulted = told("defaulted")
    cover_line = next(line for line in defaulted if line.startswith("defaulted:"))
    outstanding, covered, lost = (D(x.replace(",", "")) for x in re.findall(r"([\d,]+\.\d\d)", cover_line))
    assert outstanding == D("50000.00") and covered > 0  # the borrower paid nothing; the fund held something
    # each investor: what they got back from the reserve fund, and how short of what they lent
    investors = [
        [D(x.replace(",", "")) for x in re.findall(r"([\d,]+\.\d\d)", line)]
        for line in defaulted
        if line.strip().startswith("investor ")
    ]
    assert len(investors) == 2
    for lent, back, installments, fund, short in investors:
        assert (lent, installments) == (D("25000.00"), 0) and back == fund and short == lent - back
    assert sum(fund for *_, fund, _ in investors) == covered  # the fund's cover, to the kopek
    assert sum(short for *_, short in investors) == lost
    unfunded = told("unfunded")
    assert any("rejected: funding_expired" in line for line in unfunded)
    assert any(
        "reservation of 10,000.00 released: 10,000.00 available again, 0.00 reserved" in line for line in unfunded
    )
    # the programmed purchase: contributions until its award, its award credit paid to the seller
    plan = told("plan")
    assert sum("contribution" in line and "paid" in line for line in plan) == 3
    assert any(line.startswith("awarded (contributions reached 30% of the price)") for line in plan)
    assert any("the seller was paid 300,000.00" in line for line in plan)
    assert plan[-1] == "the award credit is repaid"
    # the summary: each loan's figures
    header = next(
        i
        for i, line in enumerate(story)
        if line.split() == ["loan", "status", "amount", "principal", "interest", "late_fees", "cover", "loss"]
    )
    rows = {}
    for line in story[header + 1 : header + 5]:
        *label, status, amount, principal, interest, late_fees, cover, loss = line.split()
        rows[" ".join(label)] = (status, D(amount), D(principal), D(interest), D(late_fees), D(cover), D(loss))

    def collected(label: str) -> Decimal:
        amounts = [re.search(r"collected: ([\d,]+\.\d\d)", line) for line in told(label)]
        return sum((D(m.group(1).replace(",", "")) for m in amounts if m), D(0))

    # what the summary says is what the story told, installment by installment
    for label in ("repaid", "late, paid"):
        assert rows[label][2] + rows[label][3] == collected(label)  # principal + interest
    assert rows["repaid"][:3] == ("repaid", D("120000.00"), D("120000.00"))
    assert rows["repaid"][4] == sum(fees_told("repaid"))
    assert rows["late, paid"][:3] == ("repaid", D("60000.00"), D("60000.00"))
    assert rows["late, paid"][4] == sum(fees_told("late, paid"))
    status, amount, principal, _, _, cover, loss = rows["defaulted"]
    assert status == "defaulted" and (cover, loss) == (covered, lost) and principal + cover + loss == amount
    assert rows["unfunded"][:3] == ("rejected", D("100000.00"), D("0.00"))
    assert "trial balance total: 0.00 (balanced: True)" in story
    assert any(line.strip().endswith("accounts, each equal to the sum of its postings") for line in story)
    # no access log of the demo's own polling
    assert not [line for line in lines if '"GET /v1/' in line or "HTTP/1.1" in line]
