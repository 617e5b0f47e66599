"""`make run` as a newcomer runs it (its own PostgreSQL and Temporal dev server on a data
folder, the worker and the API), with loans repaying on the sandbox clock, under faults:

1. supervision: the worker, the API, the Temporal server and PostgreSQL are killed
   (SIGKILL) one after the other; each is started again, with a line saying so, and the
   loans go on;
2. power loss: every process of the platform killed at once; `make run` started again on
   the same data; the loans reach their end, and for every loan the ledger, the read side
   and the workflow agree, nothing was collected twice, the books balance;
3. the supervisor alone killed (SIGKILL): its children die with it; nothing keeps the ports.

And what protects it: the secrets it generated (owner-only, found nowhere in the repository)
refuse a token forged with any secret-looking string the repository contains; the API and
the worker connect to PostgreSQL as a role that cannot disable a ledger trigger; a client
naming a new X-Forwarded-For on every guess does not escape the per-address login limit.

Every process is found by the data folder in its environment and stopped by its pid."""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import httpx
import jwt
import psycopg
import pytest
from psycopg import errors
from sqlalchemy.orm import sessionmaker

from core.db import make_engine
from core.settings import Settings
from core.temporal_client import connect_temporal
from runner.local_secrets import SECRET_SETTINGS
from runner.ports import free_port
from tests.money_checks import assert_everything_agrees
from tests.process_tree import alive, command_line, processes_using

ROOT = Path(__file__).resolve().parent.parent
D = Decimal
# A month of loan time every 20 seconds: slow enough that the outages below (seconds each)
# stay far from the 90 days after which a loan defaults.
MONTH_PER_20_SECONDS = str(2_592_000 // 20)
PR_SET_CHILD_SUBREAPER = 36
OPERATOR = {"OPERATOR_EMAIL": "supervision-operator@example.com", "OPERATOR_PASSWORD": "operator password 2026"}


class MakeRun:
    """`python -m runner.run` (what `make run` runs) on a data folder, its output in a log."""

    def __init__(self, tmp_path: Path) -> None:
        self.data_dir = tmp_path / "data"
        self.log = tmp_path / "make-run.log"
        self.env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS", "ENVIRONMENT")}
        self.env.update(
            PYTHONPATH=str(ROOT),
            DATA_DIR=str(self.data_dir),
            API_PORT=str(free_port()),
            TEMPORAL_DEV_PORT=str(free_port()),
            TEMPORAL_UI_PORT=str(free_port()),
            EMBEDDED_POSTGRES_PORT=str(free_port()),
            LOAN_TIME_SCALE=MONTH_PER_20_SECONDS,
            API_ACCESS_LOG="false",
            # (every account here signs up from this machine)
            SIGNUPS_PER_ADDRESS_PER_HOUR="1000",
            **OPERATOR,
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.tmp_path = tmp_path

    @property
    def secrets(self) -> dict[str, str]:
        """What `make run` generated at its first start."""
        return json.loads((self.data_dir / "secrets.json").read_text())

    @property
    def settings(self) -> Settings:
        keys = ("DATA_DIR", "API_PORT", "TEMPORAL_DEV_PORT", "TEMPORAL_UI_PORT", "EMBEDDED_POSTGRES_PORT")
        generated: dict = {k: v for k, v in self.secrets.items() if k != "OPERATOR_PASSWORD"}
        generated["PAYLOAD_ENCRYPTION_KEYS"] = json.loads(generated["PAYLOAD_ENCRYPTION_KEYS"])
        return Settings(_env_file=None, **{k: self.env[k] for k in keys}, **generated, **OPERATOR)

    def environment_of(self, fragment: str) -> dict[str, str]:
        raw = (Path("/proc") / str(self.pid_of(fragment)) / "environ").read_bytes()
        return dict(entry.decode().split("=", 1) for entry in raw.split(b"\0") if b"=" in entry)

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "runner.run"],
                cwd=self.tmp_path,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        marker = self.text().count("the platform is up")
        self.wait_for_line("the platform is up", after=marker)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_line(self, fragment: str, after: int = 0, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.text().count(fragment) <= after:
            assert self.process is not None and self.process.poll() is None, self.text()[-4000:]
            assert time.monotonic() < deadline, f"no {fragment!r}:\n{self.text()[-4000:]}"
            time.sleep(0.2)

    def pid_of(self, fragment: str) -> int:
        pids = [p for p in processes_using(self.data_dir) if fragment in command_line(p) and alive(p)]
        assert len(pids) >= 1, f"no process running {fragment!r}"
        return min(pids)  # (PostgreSQL: the postmaster, the oldest)

    def kill_everything(self) -> None:
        """SIGKILL to every process of the platform, then each reaped (the test is their
        subreaper: see `reaping_orphans`), as a machine that lost power leaves no process."""
        killed = set()
        deadline = time.monotonic() + 60
        while pids := [p for p in processes_using(self.data_dir) if alive(p)]:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            killed.update(pids)
            assert time.monotonic() < deadline, f"still running: {pids}"
            time.sleep(0.1)
        if self.process is not None:
            self.process.wait(30)
        reap(killed)


def reap(pids) -> None:
    """Zombies of ours (orphans given to us as their subreaper) are waited for, so that no
    dead PostgreSQL's pid looks alive to the next start."""
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass  # not ours (already reaped by its parent)


@contextmanager
def reaping_orphans():
    """This process becomes the subreaper of everything it starts: when `make run` dies its
    orphans are re-parented here (not to a container's init that may never reap them)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0)


def _wait(predicate, what: str, timeout: float = 120.0) -> None:
    """Until `predicate()`; an API that is restarting (refused connections, 5xx while its
    database comes back) counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except (httpx.TransportError, KeyError, ValueError):
            pass
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.2)


def test_make_run_refuses_a_data_folder_whose_secrets_were_published(tmp_path):
    """A folder made before secrets were generated: its histories are sealed with a key the
    repository published. Refused with what to do, before anything starts."""
    platform = MakeRun(tmp_path)
    (platform.data_dir / "temporal").mkdir(parents=True)
    with platform.log.open("ab") as out:
        code = subprocess.run(
            [sys.executable, "-m", "runner.run"], cwd=tmp_path, env=platform.env, stdout=out, stderr=subprocess.STDOUT
        ).returncode
    assert code == 2
    assert "make clean-data" in platform.text() and not (platform.data_dir / "secrets.json").exists()


def test_make_run_restarts_what_dies_and_survives_a_power_loss(tmp_path):
    platform = MakeRun(tmp_path)
    with reaping_orphans():
        _live_through_the_faults(platform)


def _live_through_the_faults(platform: MakeRun) -> None:
    from runner.demo import DemoClient

    try:
        platform.start()
        demo = DemoClient(platform.settings)
        _generated_secrets_refuse_forged_tokens(platform, demo)
        _the_app_connects_with_least_privilege(platform)
        loans: dict[uuid.UUID, str] = {}
        borrowers = []
        for _ in range(3):
            borrower = demo.user("borrower")
            demo.deposit(borrower, "10000.00")  # with what is paid out: every installment, and then some
            created = demo.http.post(
                "/v1/loans", headers=borrower, json={"amount": "30000.00", "term_months": 4, "purpose": "supervision"}
            )
            assert created.status_code == 201, created.text
            loans[uuid.UUID(created.json()["id"])] = created.json()["workflow_id"]
            borrowers.append(borrower)
        for loan_id, borrower in zip(loans, borrowers):
            _wait(
                lambda loan_id=loan_id, borrower=borrower: (
                    demo.http.get(f"/v1/loans/{loan_id}", headers=borrower).json()["status"] == "funding"
                ),
                "funding",
            )
            for _ in range(2):
                investor = demo.user("investor")
                demo.deposit(investor, "15000.00")
                answer = demo.http.post(
                    f"/v1/loans/{loan_id}/investments", json={"amount": "15000.00"}, headers=investor
                )
                assert answer.status_code == 201, answer.text

        # 1. supervision: each child killed is started again, and says so
        for name, fragment in (("worker", "worker.py"), ("api", "api.serve")):
            pid = platform.pid_of(fragment)
            os.kill(pid, signal.SIGKILL)
            platform.wait_for_line(f"{name} (pid {pid}) exited with code -9; starting it again")
            platform.wait_for_line(f"{name} started again")
        _wait(lambda: demo.http.get("/health").status_code == 200, "the API answers again")
        temporal = platform.pid_of("server start-dev")
        os.kill(temporal, signal.SIGKILL)
        platform.wait_for_line(
            f"the Temporal server (pid {temporal}) exited with code -9; starting it again on the same data"
        )
        platform.wait_for_line("the Temporal server is back", timeout=180)
        postmaster = platform.pid_of("postgres -D")
        os.kill(postmaster, signal.SIGKILL)
        platform.wait_for_line(f"PostgreSQL (pid {postmaster}) exited with code -9; starting it again on the same data")
        platform.wait_for_line("PostgreSQL is back", timeout=180)

        def every_loan_collected_once() -> bool:
            return all(
                any(
                    row["status"] == "paid"
                    for row in demo.http.get(f"/v1/loans/{loan_id}/schedule", headers=borrower).json()
                )
                for loan_id, borrower in zip(loans, borrowers)
            )

        _wait(every_loan_collected_once, "an installment collected on every loan, after the restarts")
        statuses = {demo.http.get(f"/v1/loans/{i}", headers=b).json()["status"] for i, b in zip(loans, borrowers)}
        assert statuses == {"active"}, "the loans ended before the power loss"

        # 2. power loss: everything at once, then `make run` again on the same data
        platform.kill_everything()
        _wait(lambda: not [p for p in processes_using(platform.data_dir) if alive(p)], "every process gone")
        secrets_before = platform.secrets
        platform.start()
        # the same secrets again: a token issued before the power loss still works
        assert platform.secrets == secrets_before
        assert demo.http.get("/v1/operator/deposits", headers=demo.operator).status_code == 200
        demo = DemoClient(platform.settings)
        borrower_of = dict(zip(loans, borrowers))
        _wait(
            lambda: all(
                demo.http.get(f"/v1/loans/{i}", headers=borrower_of[i]).json()["status"] in ("repaid", "defaulted")
                for i in loans
            ),
            "every loan at its end",
            timeout=240,
        )
        settings = platform.settings.model_copy(
            update={
                "DATABASE_URL": (
                    f"postgresql://postgres:{platform.secrets['EMBEDDED_POSTGRES_PASSWORD']}"
                    f"@127.0.0.1:{platform.env['EMBEDDED_POSTGRES_PORT']}/crowdlending"
                ),
                "TEMPORAL_ADDRESS": f"127.0.0.1:{platform.env['TEMPORAL_DEV_PORT']}",
            }
        )
        engine = make_engine(settings.DATABASE_URL, 2)
        try:

            async def check() -> None:
                client = await connect_temporal(settings)
                await assert_everything_agrees(sessionmaker(bind=engine), client, loans, {"repaid"})

            asyncio.run(check())
        finally:
            engine.dispose()

        _proxy_headers_do_not_escape_the_login_limits(platform)

        # 3. the supervisor alone killed: its children follow it
        assert platform.process is not None
        children = [p for p in processes_using(platform.data_dir) if p != platform.process.pid and alive(p)]
        assert len(children) >= 4  # the worker, the API, PostgreSQL, Temporal
        os.kill(platform.process.pid, signal.SIGKILL)
        platform.process.wait(10)
        _wait(lambda: not [p for p in children if alive(p)], "the children gone with the supervisor", timeout=60)
        reap(children)
    finally:
        platform.kill_everything()


def _repository_strings() -> set[str]:
    """Every string in the repository's files that could be a secret: quoted or assigned,
    16 characters or more, no spaces (the saved workflow histories are event data, and every
    value in them is checked against the generated secrets below all the same)."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    pattern = re.compile(r"""(?:["'`]|=\s*)([A-Za-z0-9+/=_\-!.:@#$%^&*~]{16,200})""")
    found: set[str] = set()
    for name in files:
        if name.startswith("tests/histories/"):
            continue
        try:
            text = (ROOT / name).read_text(errors="ignore")
        except OSError:
            continue
        found.update(match.group(1) for match in pattern.finditer(text))
    return found


def _generated_secrets_refuse_forged_tokens(platform: MakeRun, demo) -> None:
    path = platform.data_dir / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    generated = platform.secrets
    keys = json.loads(generated["PAYLOAD_ENCRYPTION_KEYS"])
    values = [generated["JWT_SECRET"], *keys.values(), generated["EMBEDDED_POSTGRES_PASSWORD"]]
    values.append(generated["EMBEDDED_APP_DB_PASSWORD"])
    for name in subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split():
        try:
            text = (ROOT / name).read_text(errors="ignore")
        except OSError:
            continue
        assert not [v for v in values if v in text], f"a generated secret is in {name}"
    # The operator's real token works; the same claims signed with anything the repository
    # holds (or unsigned) do not.
    me = demo.http.get("/v1/users/me", headers=demo.operator)
    assert me.status_code == 200
    claims = {"sub": me.json()["id"], "role": "operator", "tv": 0, "typ": "access", "jti": uuid.uuid4().hex}
    claims |= {"iat": int(time.time()), "exp": int(time.time()) + 600}
    candidates = _repository_strings()
    assert len(candidates) > 100 and "dev-only-secret-change-me-0123456789abcdef" in candidates
    # (the forgery is right in every way but its key: with the platform's own secret it is let in)
    genuine = jwt.encode(claims, generated["JWT_SECRET"], algorithm="HS256")
    assert demo.http.get("/v1/operator/deposits", headers={"Authorization": f"Bearer {genuine}"}).status_code == 200
    forged = [jwt.encode(claims, secret, algorithm="HS256") for secret in sorted(candidates)]
    forged.append(jwt.encode(claims, None, algorithm="none"))
    accepted = []
    for token in forged:
        answer = demo.http.get("/v1/operator/deposits", headers={"Authorization": f"Bearer {token}"})
        if answer.status_code != 401:
            accepted.append((token, answer.status_code))
    assert accepted == []


def _the_app_connects_with_least_privilege(platform: MakeRun) -> None:
    for fragment in ("api.serve", "worker.py"):
        url = platform.environment_of(fragment)["DATABASE_URL"]
        assert url.startswith("postgresql://crowdlending:"), f"{fragment} connects as {url.split('@')[0]}"
        # nor can they reach the owner's URL or the superuser's password
        assert {"MIGRATION_DATABASE_URL", "EMBEDDED_POSTGRES_PASSWORD"} & set(
            platform.environment_of(fragment)
        ) == set()
    # the servers hold none of the platform's secrets (the payload keys stay out of Temporal)
    for fragment in ("server start-dev", "postgres -D"):
        assert SECRET_SETTINGS & set(platform.environment_of(fragment)) == set(), fragment
    with psycopg.connect(url, autocommit=True) as conn:
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("ALTER TABLE ledger_postings DISABLE TRIGGER ALL")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("DELETE FROM audit_log")


def _proxy_headers_do_not_escape_the_login_limits(platform: MakeRun) -> None:
    """The API as `make run` starts it (uvicorn trusts X-Forwarded-For from loopback by
    default): one address naming a new forwarded address on every guess is still one address."""
    limit = platform.settings.LOGIN_MAX_FAILURES_PER_ADDRESS
    with httpx.Client(base_url=f"http://127.0.0.1:{platform.env['API_PORT']}", timeout=30) as http:
        answers = [
            http.post(
                "/v1/auth/token",
                data={"username": f"guess-{n}@example.com", "password": "a guess"},
                headers={"X-Forwarded-For": f"10.{n // 250}.{n % 250}.1"},
            ).status_code
            for n in range(limit + 3)
        ]
    assert answers[:limit] == [401] * limit and set(answers[limit:]) == {429}, answers
