"""`make demo`: the platform on the sandbox clock, and four loans living whole lives in a
minute or two, to watch in the Temporal UI (repaid; late then paid; defaulted; unfunded).

It starts everything as `make run` does (data in data/demo, LOAN_TIME_SCALE=2592000: a month
of loan time per second), drives the loans through the public API like a client would, prints
what happened, and stays up until Ctrl-C so the workflows can be inspected.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx

from core.settings import PROJECT_ROOT, Settings

PASSWORD = "demo password 2026"
# Set on Ctrl-C: the scenario threads stop waiting and the platform shuts down at once.
STOP = threading.Event()


class DemoClient:
    def __init__(self, settings: Settings) -> None:
        host = "127.0.0.1" if settings.API_HOST in ("0.0.0.0", "127.0.0.1") else settings.API_HOST
        self.http = httpx.Client(base_url=f"http://{host}:{settings.API_PORT}", timeout=60)
        self.operator = self.login(
            settings.OPERATOR_EMAIL or "",
            settings.OPERATOR_PASSWORD.get_secret_value() if settings.OPERATOR_PASSWORD else "",
        )

    def login(self, email: str, password: str) -> dict[str, str]:
        answer = self.http.post("/v1/auth/token", data={"username": email, "password": password})
        answer.raise_for_status()
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    def user(self, role: str) -> dict[str, str]:
        email = f"demo-{role}-{uuid.uuid4().hex[:6]}@example.com"
        self.http.post("/v1/users", json={"email": email, "password": PASSWORD, "role": role}).raise_for_status()
        headers = self.login(email, PASSWORD)
        if role == "borrower":
            self.http.put(
                "/v1/users/me/profile",
                headers=headers,
                json={"monthly_income": "250000", "monthly_obligations": "10000", "employment_months": 60},
            ).raise_for_status()
        return headers

    def deposit(self, headers: dict[str, str], amount: str) -> None:
        deposit = self.http.post("/v1/wallets/deposits", json={"amount": amount}, headers=headers)
        deposit.raise_for_status()
        self.http.post(
            f"/v1/operator/deposits/{deposit.json()['id']}/confirm", headers=self.operator
        ).raise_for_status()

    def withdraw_everything(self, headers: dict[str, str]) -> None:
        available = self.http.get("/v1/wallets/me", headers=headers).json()["available"]
        if Decimal(available) <= 0:
            return
        withdrawal = self.http.post("/v1/wallets/withdrawals", json={"amount": available}, headers=headers)
        withdrawal.raise_for_status()
        self.http.post(
            f"/v1/operator/withdrawals/{withdrawal.json()['id']}/pay", headers=self.operator
        ).raise_for_status()

    def status(self, loan_id: str, headers: dict[str, str]) -> dict:
        return self.http.get(f"/v1/loans/{loan_id}", headers=headers).json()

    def wait(self, loan_id: str, headers: dict[str, str], *statuses: str, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not STOP.is_set():
            loan = self.status(loan_id, headers)
            if loan["status"] in statuses:
                return loan
            time.sleep(0.05)
        raise TimeoutError(f"loan {loan_id} did not reach {statuses}")

    def funded_loan(
        self, borrower: dict[str, str], amount: str, term: int, product: str = "standard", fund: bool = True
    ) -> str:
        created = self.http.post(
            "/v1/loans",
            headers=borrower,
            json={"product": product, "amount": amount, "term_months": term, "purpose": "demo"},
        )
        created.raise_for_status()
        loan_id = created.json()["id"]
        self.wait(loan_id, borrower, "funding")
        half = f"{Decimal(amount) / 2:.2f}"
        for _ in range(2 if fund else 1):
            investor = self.user("investor")
            self.deposit(investor, half)
            self.http.post(
                f"/v1/loans/{loan_id}/investments", json={"amount": half if fund else "10000.00"}, headers=investor
            ).raise_for_status()
        return loan_id


def ensure_short_window_product(demo: DemoClient) -> None:
    from products.catalog import STANDARD

    terms = {
        **STANDARD.model_dump(mode="json"),
        "code": "demo_short_window",
        "name": "Demo: one-minute funding window",
        "funding_window_minutes": 1,
    }
    answer = demo.http.post("/v1/operator/products", json=terms, headers=demo.operator)
    if answer.status_code not in (201, 409):
        answer.raise_for_status()


def say(line: str) -> None:
    print(f"[make demo] {line}", flush=True)


def scenario_repaid(demo: DemoClient) -> str:
    borrower = demo.user("borrower")
    loan_id = demo.funded_loan(borrower, "120000.00", 12)
    demo.deposit(borrower, "20000.00")  # with what was disbursed, enough for every installment
    return f"repaid      {loan_id}: {demo.wait(loan_id, borrower, 'repaid', 'defaulted')['status']}"


def scenario_late_then_paid(demo: DemoClient) -> str:
    borrower = demo.user("borrower")
    loan_id = demo.funded_loan(borrower, "60000.00", 6)
    demo.wait(loan_id, borrower, "active")
    demo.withdraw_everything(borrower)  # spent: the next installment will be overdue
    STOP.wait(2.5)  # ~75 days of loan time
    demo.deposit(borrower, "80000.00")  # the deposit signals the loan: collected with late fees
    final = demo.wait(loan_id, borrower, "repaid", "defaulted")
    fees = sum(
        Decimal(r["late_fee_paid"]) for r in demo.http.get(f"/v1/loans/{loan_id}/schedule", headers=borrower).json()
    )
    return f"late, paid  {loan_id}: {final['status']}, late fees paid {fees:.2f}"


def scenario_defaulted(demo: DemoClient) -> str:
    borrower = demo.user("borrower")
    loan_id = demo.funded_loan(borrower, "50000.00", 6)
    demo.wait(loan_id, borrower, "active")
    demo.withdraw_everything(borrower)  # and never pays again
    return f"defaulted   {loan_id}: {demo.wait(loan_id, borrower, 'defaulted', 'repaid')['status']}"


def scenario_unfunded(demo: DemoClient) -> str:
    borrower = demo.user("borrower")
    loan_id = demo.funded_loan(borrower, "100000.00", 12, product="demo_short_window", fund=False)
    final = demo.wait(loan_id, borrower, "rejected", timeout=180)
    return f"unfunded    {loan_id}: {final['status']} ({final['rejection_reason']})"


def run_scenarios(settings: Settings) -> None:
    demo = DemoClient(settings)
    ensure_short_window_product(demo)
    say("four loans start now; a month of loan time passes every second")
    scenarios = (scenario_repaid, scenario_late_then_paid, scenario_defaulted, scenario_unfunded)
    pool = ThreadPoolExecutor(len(scenarios))
    try:
        for line in pool.map(lambda scenario: scenario(demo), scenarios):
            say(line)
    except BaseException:
        STOP.set()
        raise
    finally:
        pool.shutdown(wait=not STOP.is_set(), cancel_futures=True)
    trial = demo.http.get("/v1/operator/ledger/trial-balance", headers=demo.operator).json()
    say(f"trial balance total: {trial['total']} (balanced: {trial['balanced']})")
    say(
        f"watch them in the Temporal UI: http://localhost:{settings.TEMPORAL_UI_PORT} "
        '(e.g. search: LoanStatus = "defaulted"); Ctrl-C to stop'
    )


def main() -> int:
    os.environ.setdefault("DATA_DIR", str(PROJECT_ROOT / "data" / "demo"))
    os.environ.setdefault("LOAN_TIME_SCALE", "2592000")
    os.environ.setdefault("OPERATOR_EMAIL", "demo-operator@example.com")
    os.environ.setdefault("OPERATOR_PASSWORD", "demo operator password")
    from runner.run import main as run_platform

    def after_start(settings: Settings) -> None:
        try:
            run_scenarios(settings)
        except Exception as exc:  # keep the platform up for inspection
            say(f"a scenario failed: {exc}")

    return run_platform(after_start)


if __name__ == "__main__":
    sys.exit(main())
