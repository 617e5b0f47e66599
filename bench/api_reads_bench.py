"""API reads as their real roles, loaded by wrk (an outside load generator) with 32
connections against the platform started as `make run` starts it (`python -m runner.run`:
embedded PostgreSQL, the Temporal dev server, the worker, API_PROCESSES API processes), beside
GET /livez of the same app (no I/O: the floor of the app's own stack) in the same run.

Run with one and with two API processes on this machine, to show what processes give."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from runner.ports import free_port

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 32
OPERATOR = {"OPERATOR_EMAIL": "bench-operator@example.com", "OPERATOR_PASSWORD": "bench operator password 2026"}
PASSWORD = "bench password 2026"


@dataclass(frozen=True)
class WrkRow:
    endpoint: str
    api_processes: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def ensure_wrk() -> str:
    """wrk from Debian's packages: installed once, when missing (the machines run as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env, capture_output=True)
        found = shutil.which("wrk")
    if not found:
        raise RuntimeError("the API read benchmark needs wrk: sudo apt-get install -y wrk")
    return found


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> tuple[int, float, float, float, int]:
    """(requests, seconds, p50 ms, p99 ms, errors) from `wrk --latency`'s report."""
    done = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", output)
    if done is None:
        raise RuntimeError(f"wrk said:\n{output}")
    seconds = float(done.group(2)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[done.group(3)]
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    assert p50 and p99, output
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return int(done.group(1)), seconds, _ms(p50.group(1)), _ms(p99.group(1)), errors


class MakeRun:
    """`python -m runner.run` on a data folder of its own; stopped as Ctrl-C stops it."""

    def __init__(self, tmp: Path, api_processes: int, worker_processes: int = 1) -> None:
        self.tmp = tmp
        self.api_port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS", "ENVIRONMENT")},
            "PYTHONPATH": str(PROJECT_ROOT),
            "DATA_DIR": str(tmp / "data"),
            "API_PORT": str(self.api_port),
            "TEMPORAL_DEV_PORT": str(free_port()),
            "TEMPORAL_UI_PORT": str(free_port()),
            "EMBEDDED_POSTGRES_PORT": str(free_port()),
            "API_PROCESSES": str(api_processes),
            "WORKER_PROCESSES": str(worker_processes),
            # (every account here signs up from this machine)
            "SIGNUPS_PER_ADDRESS_PER_HOUR": "100000",
            "ANONYMOUS_POSTS_PER_ADDRESS_PER_MINUTE": "100000",
            **OPERATOR,
        }
        self.log = tmp / "make-run.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MakeRun:
        self.tmp.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "runner.run"],
                cwd=self.tmp,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 180
        while "the platform is up" not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"make run did not come up:\n{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        return self

    def __exit__(self, *_: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)  # as Ctrl-C: every child stopped by its pid
        try:
            self.process.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


def _login(http: httpx.Client, email: str, password: str) -> dict[str, str]:
    answer = http.post("/v1/auth/token", data={"username": email, "password": password})
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _user(http: httpx.Client, role: str, n: int) -> dict[str, str]:
    email = f"bench-{role}-{n}-{time.monotonic_ns()}@example.com"
    http.post("/v1/users", json={"email": email, "password": PASSWORD, "role": role}).raise_for_status()
    headers = _login(http, email, PASSWORD)
    if role == "borrower":
        http.put(
            "/v1/users/me/profile",
            headers=headers,
            json={"monthly_income": "250000", "monthly_obligations": "10000", "employment_months": 60},
        ).raise_for_status()
    return headers


def prepare_reads(url: str, loans: int) -> dict[str, tuple[str, dict[str, str]]]:
    """`loans` loans open for funding (one invested in by the reader), and an investor with
    money and a holding: what each read is, by endpoint, with the reader's token."""
    with httpx.Client(base_url=url, timeout=60) as http:
        operator = _login(http, OPERATOR["OPERATOR_EMAIL"], OPERATOR["OPERATOR_PASSWORD"])
        loan_ids = []
        for n in range(loans):
            borrower = _user(http, "borrower", n)
            created = http.post(
                "/v1/loans", json={"amount": "300000.00", "term_months": 12, "purpose": "bench"}, headers=borrower
            )
            created.raise_for_status()
            loan_ids.append(created.json()["id"])
        investor = _user(http, "investor", 0)
        deposit = http.post("/v1/wallets/deposits", json={"amount": "50000.00"}, headers=investor)
        deposit.raise_for_status()
        http.post(f"/v1/operator/deposits/{deposit.json()['id']}/confirm", headers=operator).raise_for_status()
        deadline = time.monotonic() + 120
        while True:
            listed = http.get("/v1/loans", params={"status": "funding"}, headers=investor).json()
            if len(listed) >= loans:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(listed)} of {loans} loans opened for funding")
            time.sleep(0.5)
        http.post(
            f"/v1/loans/{loan_ids[0]}/investments", json={"amount": "1000.00"}, headers=investor
        ).raise_for_status()
    return {
        "GET /livez (floor: the app, no I/O)": ("/livez", {}),
        "GET /v1/loans/{id} (investor)": (f"/v1/loans/{loan_ids[0]}", investor),
        "GET /v1/wallets/me (investor)": ("/v1/wallets/me", investor),
        f"GET /v1/loans?status=funding (investor, {loans} loans)": ("/v1/loans?status=funding", investor),
    }


def run_wrk(wrk: str, url: str, headers: dict[str, str], seconds: int) -> tuple[int, float, float, float, int]:
    args = [wrk, "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    done = subprocess.run([*args, url], check=True, capture_output=True, text=True)
    return parse_wrk(done.stdout)


def run_api_reads_bench(tmp: Path, quick: bool) -> tuple[list[WrkRow], list[str]]:
    wrk = ensure_wrk()
    seconds = 3 if quick else 15
    loans = 5 if quick else 20
    rows: list[WrkRow] = []
    for processes in (1, 2):
        # (two API processes beside two workers: what adding processes gives, on the same servers)
        with MakeRun(tmp / f"api-{processes}", processes, worker_processes=processes) as platform:
            reads = prepare_reads(platform.url, loans)
            for endpoint, (path, headers) in reads.items():
                run_wrk(wrk, platform.url + path, headers, 2)  # warm: connections, caches, the JIT-less rest
                requests, elapsed, p50, p99, errors = run_wrk(wrk, platform.url + path, headers, seconds)
                rows.append(WrkRow(endpoint, processes, requests, elapsed, requests / elapsed, p50, p99, errors))
                print("[bench]", rows[-1], flush=True)
    notes = [
        f"wrk -t2 -c{CONNECTIONS} -d{seconds}s --latency, after 2 s of warm-up, on loopback; wrk itself runs on the "
        "same 2 cores as PostgreSQL, Temporal, the worker and the API",
        "the platform as `make run` starts it (access log on, as by default), with one API process and one "
        "worker, then two of each (API_PROCESSES=2 is the default); every read authenticates its bearer token "
        "and checks the user in the database (revocation is immediate), as in production",
    ]
    return rows, notes


def wrk_table(rows: list[WrkRow]) -> str:
    floors = {row.api_processes: row for row in rows if row.endpoint.startswith("GET /livez")}
    lines = [
        f"| endpoint ({CONNECTIONS} connections, wrk) | API processes (and workers) | requests | requests/s | "
        "p50 ms | p99 ms | errors (timeouts are not in wrk's percentiles) | of the floor's requests/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        floor = floors.get(row.api_processes)
        ratio = f"{row.rps / floor.rps:.2f}" if floor else "-"
        lines.append(
            f"| {row.endpoint} | {row.api_processes} | {row.requests:,} | {row.rps:,.0f} | {row.p50_ms:.1f} | "
            f"{row.p99_ms:.1f} | {row.errors} | {ratio} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # BENCH_QUICK=1 python -m bench.api_reads_bench: this part alone
    import tempfile

    with tempfile.TemporaryDirectory(prefix="crowdlending-api-reads-") as tmp_dir:
        found, found_notes = run_api_reads_bench(Path(tmp_dir), os.environ.get("BENCH_QUICK") == "1")
        print(wrk_table(found))
        print("\n".join(f"- {note}" for note in found_notes))
