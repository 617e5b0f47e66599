"""The platform's worker (and API) in processes of their own, for tests that kill them or
that drive them from outside (the API fuzzer over HTTP).

The child is the real worker (worker.platform_workers: every workflow and activity), started
as `python -m tests.worker_process` with the test's settings in its environment. With
CRASH_AFTER_ACTIVITY=<loan activity> it kills itself with SIGKILL right after that activity
has committed its database transaction, before Temporal hears of the result: the crash
the ledger's idempotency keys exist for.

The parent side (`worker_process`) starts it and always stops it, by its own process id.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from temporalio import activity

from activities.loans import LoanActivities
from core.settings import Settings
from runner.ports import stop_process

ROOT = Path(__file__).resolve().parent.parent
READY = "worker_process: polling"


# -- the parent: start, and always stop --------------------------------------------------------------
def _child_environment(settings: Settings) -> dict[str, str]:
    """The test's settings and nothing of a developer's own: the child runs in the log's
    folder (no `.env` there) with the project on its path."""
    env = {**os.environ, **settings_environment(settings), "PYTHONPATH": str(ROOT)}
    env.pop("CRASH_AFTER_ACTIVITY", None)
    env.pop("HOLD_AFTER_COLLECTING", None)
    return env


def settings_environment(settings: Settings) -> dict[str, str]:
    """The test's settings as the environment variables Settings() reads."""
    return {
        "ENVIRONMENT": settings.ENVIRONMENT,
        "DATABASE_URL": settings.DATABASE_URL,
        "DATA_DIR": str(settings.DATA_DIR),
        "JWT_SECRET": settings.JWT_SECRET.get_secret_value(),
        "TEMPORAL_ADDRESS": settings.TEMPORAL_ADDRESS,
        "TEMPORAL_NAMESPACE": settings.TEMPORAL_NAMESPACE,
        "TASK_QUEUE": settings.TASK_QUEUE,
        "PAYLOAD_ENCRYPTION_KEYS": json.dumps(
            {k: v.get_secret_value() for k, v in settings.PAYLOAD_ENCRYPTION_KEYS.items()}
        ),
        "PAYLOAD_ENCRYPTION_KEY_ID": settings.PAYLOAD_ENCRYPTION_KEY_ID,
        "LOAN_TIME_SCALE": str(settings.LOAN_TIME_SCALE),
        "LOCAL_DEV_CODEC": str(settings.LOCAL_DEV_CODEC).lower(),
        "TEMPORAL_UI_PORT": str(settings.TEMPORAL_UI_PORT),
        "API_PORT": str(settings.API_PORT),
        "DB_IDLE_IN_TRANSACTION_SECONDS": str(settings.DB_IDLE_IN_TRANSACTION_SECONDS),
        "SIGNUPS_PER_ADDRESS_PER_HOUR": str(settings.SIGNUPS_PER_ADDRESS_PER_HOUR),
        "ANONYMOUS_POSTS_PER_ADDRESS_PER_MINUTE": str(settings.ANONYMOUS_POSTS_PER_ADDRESS_PER_MINUTE),
        "TRUSTED_PROXIES": json.dumps(settings.TRUSTED_PROXIES),
    }


@contextmanager
def worker_process(
    settings: Settings, log: Path, crash_after: str | None = None, hold_after_collecting: float | None = None
) -> Iterator[subprocess.Popen]:
    """The worker in its own process, polling when this yields; stopped (SIGKILL if it does
    not stop on SIGTERM) when the block ends, if it is still alive (a frozen one is thawed
    first, so it can hear the SIGTERM)."""
    env = _child_environment(settings)
    if crash_after:
        env["CRASH_AFTER_ACTIVITY"] = crash_after
    if hold_after_collecting:
        env["HOLD_AFTER_COLLECTING"] = str(hold_after_collecting)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.worker_process"],
            cwd=log.parent,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_polling(process, log)
        yield process
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
        stop_process(process, signal.SIGTERM, 15)


@contextmanager
def api_process(settings: Settings, log: Path, port: int) -> Iterator[str]:
    """The API as `make run` starts it (uvicorn, the app factory) in its own process; yields
    its base URL once it answers /health, and stops it by its process id."""

    import httpx

    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api.main:app_factory",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=log.parent,
            env=_child_environment(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the API exited ({process.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the API did not become healthy:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield base_url
    finally:
        stop_process(process, signal.SIGTERM, 15)


def _wait_until_polling(process: subprocess.Popen, log: Path, timeout: float = 60) -> None:

    deadline = time.monotonic() + timeout
    while READY not in log.read_text(errors="replace"):
        if process.poll() is not None:
            raise AssertionError(f"the worker process exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the worker process did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


# -- the child: the real worker, optionally crashing --------------------------------------------------
def hold_after_collecting(seconds: float) -> None:
    """Every collection, once it has taken the money and before its transaction commits,
    says so and holds its locks `seconds` (a slow disk): the moment a test freezes the
    process (SIGSTOP) to leave an attempt stalled in the middle."""
    from loans import collections

    real = collections.collect_installments

    def slow(session, input):
        result = real(session, input)
        sys.stdout.write(f"worker_process: holding collection {input.key} (attempt {activity.info().attempt})\n")
        sys.stdout.flush()
        time.sleep(seconds)
        return result

    collections.collect_installments = slow  # type: ignore[assignment]


def crashing_loan_activities(activity_name: str) -> type[LoanActivities]:
    """LoanActivities whose `activity_name` runs for real (and commits), then the process
    dies at once: no result, no failure, no graceful shutdown reaches Temporal."""
    real = getattr(LoanActivities, activity_name)

    def commit_then_die(self, input):
        real(self, input)  # the activity's own database transaction commits in here
        attempt = activity.info().attempt
        sys.stdout.write(f"worker_process: {activity_name} attempt {attempt} committed; SIGKILL\n")
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    # The real activity's signature and type hints (its input type, resolved in its module),
    # but not its activity definition: this one is registered under the same name instead.
    commit_then_die.__annotations__ = dict(real.__annotations__)
    commit_then_die.__wrapped__ = real  # type: ignore[attr-defined]
    activity.defn(name=activity_name)(commit_then_die)
    return type("CrashingLoanActivities", (LoanActivities,), {activity_name: commit_then_die})


async def main() -> None:

    import worker as platform_worker
    from core.db import make_engine, session_factory_for
    from core.temporal_client import connect_temporal
    from outbox.delivery import drain_forever

    settings = Settings()
    if os.environ.get("HOLD_AFTER_COLLECTING"):
        hold_after_collecting(float(os.environ["HOLD_AFTER_COLLECTING"]))
    crash_after = os.environ.get("CRASH_AFTER_ACTIVITY")
    if crash_after:
        assert hasattr(LoanActivities, crash_after), f"no loan activity {crash_after}"
        platform_worker.LoanActivities = crashing_loan_activities(crash_after)  # type: ignore[misc]
    engine = make_engine(
        settings.DATABASE_URL, platform_worker.ACTIVITY_THREADS + platform_worker.document_activity_slots(settings)
    )
    client = await connect_temporal(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with platform_worker.platform_workers(
        client, settings, session_factory_for(engine, settings.DB_IDLE_IN_TRANSACTION_SECONDS)
    ):
        factory = session_factory_for(engine, settings.DB_IDLE_IN_TRANSACTION_SECONDS)
        outbox = asyncio.create_task(drain_forever(client, factory, stop))
        sys.stdout.write(READY + "\n")
        sys.stdout.flush()
        await stop.wait()
        await outbox
    engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
