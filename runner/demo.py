"""`make demo`: the platform on the sandbox clock, and four loans living whole lives in a
minute or two, to watch in the Temporal UI (repaid; late then paid; defaulted; unfunded),
and a programmed purchase saving until its award, its award credit paid to the seller.

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


class LoanStory:
    """One loan of the demo, told as it happens: each change of status, each installment
    collected (amount, late fee) or gone overdue, a default's reserve-fund cover and each
    investor's shortfall, an unfunded loan's released reservations."""

    def __init__(self, demo: DemoClient, label: str, borrower: dict[str, str]) -> None:
        self.demo, self.label, self.borrower = demo, label, borrower
        self.loan_id = ""
        self.investors: list[tuple[dict[str, str], Decimal]] = []
        self.status = ""
        self.rows: dict[int, dict] = {}
        self.final: dict = {}

    def tell(self, line: str) -> None:
        say(f"{self.label:<11} {line}")

    def observe(self) -> dict:
        http = self.demo.http
        # the schedule first: an installment collected is told before the loan it ended
        schedule = http.get(f"/v1/loans/{self.loan_id}/schedule", headers=self.borrower).json()
        loan = http.get(f"/v1/loans/{self.loan_id}", headers=self.borrower).json()
        for row in schedule:
            before = self.rows.get(row["payment_num"], {})
            if row["status"] != before.get("status"):
                line = self._installment_line(row)
                if line:
                    self.tell(line)
            self.rows[row["payment_num"]] = row
        if loan["status"] != self.status:
            self.status = loan["status"]
            if self.status not in ("pending", "scoring"):  # (moments, before anything happens)
                self.tell(self._status_line(loan))
        return loan

    def _status_line(self, loan: dict) -> str:
        status = loan["status"]
        if status == "funding":
            asked = Decimal(loan["amount"])
            return (
                f"funding: {asked:,.2f} RUB asked at {loan['rate_annual']}% (grade {loan['risk_grade']}); "
                f"in the Temporal UI: loan-{loan['id']}"
            )
        if status == "active" and loan.get("asset"):  # an award credit: the seller is paid
            asset = loan["asset"]
            return (
                f"active: {Decimal(asset['price']):,.2f} paid to the seller for the {asset['kind']} "
                f"({Decimal(loan['amount']):,.2f} lent, {Decimal(asset['down_payment']):,.2f} down payment), "
                f"{len(self.investors)} investor(s)"
            )
        if status == "active":
            paid_out = self._paid_out()
            return f"active: {paid_out:,.2f} paid out to the borrower, {len(self.investors)} investor(s)"
        if status == "rejected":
            return f"rejected: {loan['rejection_reason']}"
        return status

    def _paid_out(self) -> Decimal:
        lines = self.demo.http.get("/v1/wallets/me/transactions?limit=200", headers=self.borrower).json()["items"]
        return sum((Decimal(x["amount"]) for x in lines if x["kind"] == "disbursement"), Decimal(0))

    def _installment_line(self, row: dict) -> str | None:
        n = row["payment_num"]
        if row["status"] == "paid":
            amount = Decimal(row["paid_principal"]) + Decimal(row["paid_interest"])
            fee = Decimal(row["late_fee_paid"])
            return f"installment {n} (due {row['due_date']}) collected: {amount:,.2f}, late fee {fee:,.2f}"
        if row["status"] == "overdue":
            owed = Decimal(row["principal"]) + Decimal(row["interest"])
            return f"installment {n} (due {row['due_date']}) overdue: {owed:,.2f} not in the wallet"
        if row["status"] == "written_off":
            return f"installment {n} (due {row['due_date']}) written off"
        return None

    def wait(self, *statuses: str, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not STOP.is_set():
            loan = self.observe()
            if loan["status"] in statuses:
                return loan
            time.sleep(0.1)
        raise TimeoutError(f"loan {self.loan_id} did not reach {statuses}")

    def received(self, investor: dict[str, str]) -> tuple[Decimal, Decimal]:
        """What an investor got back from the loans: from installments, from the reserve fund."""
        lines = self.demo.http.get("/v1/wallets/me/transactions?limit=200", headers=investor).json()["items"]
        mine = [x for x in lines if x["loan_id"] == self.loan_id]
        paid = sum((Decimal(x["amount"]) for x in mine if x["kind"].endswith("_collection")), Decimal(0))
        cover = sum((Decimal(x["amount"]) for x in mine if x["kind"] == "reserve_cover"), Decimal(0))
        return paid, cover

    def finish(self) -> dict:
        """The loan's figures, once it has ended: told, and kept for the summary."""
        loan = self.observe()
        rows = list(self.rows.values())
        figures = {
            "loan": self.label,
            "status": loan["status"],
            "amount": Decimal(loan["amount"]),
            "principal": sum((Decimal(r["paid_principal"]) for r in rows), Decimal(0)),
            "interest": sum((Decimal(r["paid_interest"]) for r in rows), Decimal(0)),
            "late_fees": sum((Decimal(r["late_fee_paid"]) for r in rows), Decimal(0)),
            "cover": Decimal(0),
            "loss": Decimal(0),
        }
        if loan["status"] == "defaulted":
            steps = self.demo.http.get(f"/v1/loans/{self.loan_id}/trail", headers=self.demo.operator).json()["steps"]
            default = next(s["details"] for s in steps if s["action"] == "loan.defaulted")
            figures["cover"] = Decimal(default["covered_by_reserve_fund"])
            figures["loss"] = Decimal(default["investors_loss"])
            self.tell(
                f"defaulted: {Decimal(default['outstanding_principal']):,.2f} of principal outstanding; the reserve "
                f"fund covered {figures['cover']:,.2f}, the investors lose {figures['loss']:,.2f}"
            )
            for n, (investor, lent) in enumerate(self.investors, start=1):
                paid, cover = self.received(investor)
                self.tell(
                    f"  investor {n} lent {lent:,.2f}, got back {paid + cover:,.2f} (installments {paid:,.2f}, "
                    f"reserve fund {cover:,.2f}): {max(lent - paid - cover, Decimal(0)):,.2f} short"
                )
        if loan["status"] == "rejected" and self.investors:
            for n, (investor, lent) in enumerate(self.investors, start=1):
                wallet = self.demo.http.get("/v1/wallets/me", headers=investor).json()
                self.tell(
                    f"  investor {n}'s reservation of {lent:,.2f} released: {Decimal(wallet['available']):,.2f} "
                    f"available again, {Decimal(wallet['reserved']):,.2f} reserved"
                )
        self.final = figures
        return figures


def start_loan(
    demo: DemoClient, story: LoanStory, amount: str, term: int, product: str = "standard", fund: bool = True
) -> None:
    created = demo.http.post(
        "/v1/loans",
        headers=story.borrower,
        json={"product": product, "amount": amount, "term_months": term, "purpose": "demo"},
    )
    created.raise_for_status()
    story.loan_id = created.json()["id"]
    story.wait("funding")
    share = Decimal(amount) / 2 if fund else Decimal("10000.00")
    for _ in range(2 if fund else 1):
        investor = demo.user("investor")
        demo.deposit(investor, f"{share:.2f}")
        demo.http.post(
            f"/v1/loans/{story.loan_id}/investments", json={"amount": f"{share:.2f}"}, headers=investor
        ).raise_for_status()
        story.investors.append((investor, share))
        story.tell(f"an investor reserved {share:,.2f}")


def scenario_repaid(demo: DemoClient) -> dict:
    story = LoanStory(demo, "repaid", demo.user("borrower"))
    start_loan(demo, story, "120000.00", 12)
    demo.deposit(story.borrower, "20000.00")  # with what was disbursed, enough for every installment
    story.wait("repaid", "defaulted")
    return story.finish()


def scenario_late_then_paid(demo: DemoClient) -> dict:
    story = LoanStory(demo, "late, paid", demo.user("borrower"))
    start_loan(demo, story, "60000.00", 6)
    story.wait("active")
    demo.withdraw_everything(story.borrower)  # spent: the next installment will be overdue
    story.tell("the borrower spent the money: the next installments will find the wallet empty")
    deadline = time.monotonic() + 2.5  # ~75 days of loan time
    while time.monotonic() < deadline and not STOP.is_set():
        story.observe()
        time.sleep(0.1)
    demo.deposit(story.borrower, "80000.00")  # the deposit signals the loan: collected with late fees
    story.tell("the borrower deposited 80,000.00: the loan collects what is overdue at once")
    story.wait("repaid", "defaulted")
    return story.finish()


def scenario_defaulted(demo: DemoClient) -> dict:
    story = LoanStory(demo, "defaulted", demo.user("borrower"))
    start_loan(demo, story, "50000.00", 6)
    story.wait("active")
    demo.withdraw_everything(story.borrower)  # and never pays again
    story.tell("the borrower spent the money and never pays again")
    story.wait("defaulted", "repaid")
    return story.finish()


def scenario_unfunded(demo: DemoClient) -> dict:
    story = LoanStory(demo, "unfunded", demo.user("borrower"))
    start_loan(demo, story, "100000.00", 12, product="demo_short_window", fund=False)
    story.tell("one investor of the two it needs; the one-minute funding window runs out")
    story.wait("rejected", timeout=180)
    return story.finish()


def scenario_programmed_purchase(demo: DemoClient) -> dict:
    """A programmed purchase (README "Financing modalities"): a truck of 300,000 on the
    `vehicle-plan-share` product, 30,000 a month until the contributions reach 30% of the
    price, then the award: the rest becomes an award credit, funded by two investors and paid
    to the seller with the contributions, and repaid."""
    label = "plan"
    http = demo.http

    def tell(line: str) -> None:
        say(f"{label:<11} {line}")

    seller_email = f"demo-seller-{uuid.uuid4().hex[:6]}@example.com"
    seller = http.post(
        "/v1/operator/sellers",
        json={"email": seller_email, "password": PASSWORD, "legal_name": "Demo Trucks LLC"},
        headers=demo.operator,
    )
    seller.raise_for_status()
    borrower = demo.user("borrower")
    demo.deposit(borrower, "95000.00")
    simulation = http.post(
        "/v1/simulations",
        json={
            "product": "vehicle-plan-share",
            "payment": "30000.00",
            "amount": "300000.00",
            "loan_term_months": 12,
        },
        headers=borrower,
    )
    simulation.raise_for_status()
    planned = simulation.json()["plan"]
    tell(
        f"I can pay 30,000.00 a month for a truck of 300,000.00: {planned['contribution_months']} contributions, "
        f"then an award credit of {Decimal(planned['award_credit_amount']):,.2f} over 12 months"
    )
    created = http.post(
        "/v1/plans",
        json={
            "simulation_id": simulation.json()["id"],
            "loan_term_months": 12,
            "asset": {"kind": "truck", "description": "KAMAZ 65115, 2025", "seller_id": seller.json()["id"]},
        },
        headers=borrower,
    )
    created.raise_for_status()
    plan_id = created.json()["id"]
    tell(f"saving: in the Temporal UI: plan-{plan_id}")
    told: set[int] = set()
    deadline = time.monotonic() + 120
    while not STOP.is_set():
        plan = http.get(f"/v1/plans/{plan_id}", headers=borrower).json()
        for row in plan["contributions"]:
            if row["status"] == "paid" and row["number"] not in told:
                told.add(row["number"])
                tell(f"contribution {row['number']} (due {row['due_date']}) paid: {Decimal(row['amount']):,.2f}")
        if plan["status"] != "saving":
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"plan {plan_id} is still saving")
        time.sleep(0.1)
    if plan["status"] != "awarded":
        raise RuntimeError(f"plan {plan_id} ended {plan['status']}: {plan['status_reason']}")
    tell(f"awarded ({plan['status_reason']}): contributed {Decimal(plan['contributed']):,.2f}")
    story = LoanStory(demo, label, borrower)
    story.loan_id = plan["award_loan_id"]
    story.wait("funding")
    loan = http.get(f"/v1/loans/{story.loan_id}", headers=borrower).json()
    amount = Decimal(loan["amount"])
    tell(
        f"award credit {amount:,.2f} for the rest of the price, down payment "
        f"{Decimal(loan['asset']['down_payment']):,.2f} from the contributions; "
        f"in the Temporal UI: loan-{story.loan_id}"
    )
    half = (amount / 2).quantize(Decimal("0.01"))
    for share in (half, amount - half):
        investor = demo.user("investor")
        demo.deposit(investor, f"{share:.2f}")
        http.post(
            f"/v1/loans/{story.loan_id}/investments", json={"amount": f"{share:.2f}"}, headers=investor
        ).raise_for_status()
        story.investors.append((investor, share))
    story.wait("active")
    seller_wallet = http.get("/v1/wallets/me", headers=demo.login(seller_email, PASSWORD)).json()
    tell(f"the seller was paid {Decimal(seller_wallet['available']):,.2f}: the award credit and the down payment")
    demo.deposit(borrower, f"{amount + Decimal('40000.00'):.2f}")  # every installment of the award credit
    final = story.wait("repaid", "defaulted")
    tell(f"the award credit is {final['status']}")
    return {"plan": plan_id, "loan": story.loan_id, "status": final["status"]}


SUMMARY_COLUMNS = ("loan", "status", "amount", "principal", "interest", "late_fees", "cover", "loss")


def summary_table(rows: list[dict]) -> list[str]:
    """Each loan's outcome: principal and interest collected, late fees, what the reserve fund
    covered and what the investors lost."""
    lines = ["  ".join(f"{c:>12}" for c in SUMMARY_COLUMNS)]
    for row in rows:
        cells = [row[c] if isinstance(row[c], str) else f"{row[c]:.2f}" for c in SUMMARY_COLUMNS]
        lines.append("  ".join(f"{c:>12}" for c in cells))
    return lines


def run_scenarios(settings: Settings) -> None:
    demo = DemoClient(settings)
    ensure_short_window_product(demo)
    say("four loans and a programmed purchase start now; a month of loan time passes every second")
    scenarios = (scenario_repaid, scenario_late_then_paid, scenario_defaulted, scenario_unfunded)
    pool = ThreadPoolExecutor(len(scenarios) + 1)
    try:
        purchase = pool.submit(scenario_programmed_purchase, demo)
        rows = list(pool.map(lambda scenario: scenario(demo), scenarios))
        purchase.result()
    except BaseException:
        STOP.set()
        raise
    finally:
        pool.shutdown(wait=not STOP.is_set(), cancel_futures=True)
    say("summary (RUB):")
    for line in summary_table(rows):
        say(line)
    trial = demo.http.get("/v1/operator/ledger/trial-balance", headers=demo.operator).json()
    say(f"trial balance total: {trial['total']} (balanced: {trial['balanced']})")
    say(
        f"  {len(trial['accounts'])} accounts, each equal to the sum of its postings"
        if not trial["mismatched_accounts"]
        else f"  accounts that differ from their postings: {', '.join(trial['mismatched_accounts'])}"
    )
    say("  by kind: " + ", ".join(f"{kind} {Decimal(total):,.2f}" for kind, total in trial["totals_by_kind"].items()))
    say(
        f"watch them in the Temporal UI: http://localhost:{settings.TEMPORAL_UI_PORT} "
        '(e.g. search: LoanStatus = "defaulted"); Ctrl-C to stop'
    )


def main() -> int:
    os.environ.setdefault("DATA_DIR", str(PROJECT_ROOT / "data" / "demo"))
    os.environ.setdefault("LOAN_TIME_SCALE", "2592000")
    os.environ.setdefault("OPERATOR_EMAIL", "demo-operator@example.com")
    # (its password is generated with the other secrets: DATA_DIR/secrets.json)
    # The demo signs up every borrower and investor of its stories from this machine.
    os.environ.setdefault("SIGNUPS_PER_ADDRESS_PER_HOUR", "1000")
    # The story, not the API's access log of the demo's own polling.
    os.environ.setdefault("API_ACCESS_LOG", "false")
    os.environ.setdefault("API_LOG_LEVEL", "warning")
    from runner.run import main as run_platform

    def after_start(settings: Settings) -> None:
        try:
            run_scenarios(settings)
        except Exception as exc:  # keep the platform up for inspection
            say(f"a scenario failed: {exc}")

    return run_platform(after_start)


if __name__ == "__main__":
    sys.exit(main())
