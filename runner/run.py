"""`make run`: the whole platform on one machine, from nothing but Python.

Starts (unless told to use existing ones) an embedded PostgreSQL and the Temporal dev server
with its UI, registers the search attributes, applies the migrations, seeds, then runs the
worker and the API as child processes. Ctrl-C stops every child, in reverse order, by pid.
Data stays in DATA_DIR, so a second `make run` finds the same users and loans.

It supervises what it started: a worker or API that dies is started again after a growing
delay (1 s, 2 s, 4 s ... 30 s), with a line saying so; an embedded PostgreSQL or Temporal
server that dies is reported and started again on the same data (external ones, given by
DATABASE_URL or TEMPORAL_ADDRESS, are watched and reported). Every child dies with the
supervisor, even when it is killed with SIGKILL (Linux's parent-death signal), so no worker
or API outlives it holding the ports.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import warnings

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

from sqlalchemy.engine import make_url  # noqa: E402

from core.db import normalize_database_url  # noqa: E402
from core.settings import PROJECT_ROOT, Settings, get_settings  # noqa: E402
from core.temporal_client import connect_temporal  # noqa: E402
from runner.local_secrets import LegacyDataDir, apply_local_secrets  # noqa: E402
from runner.migrate_and_seed import migrate_and_seed  # noqa: E402
from runner.ports import (  # noqa: E402
    PortInUse,
    die_with_parent,
    ensure_port_free,
    listening_socket,
    wait_for_http,
)
from runner.postgres import APP_LOGIN_ROLE, EmbeddedPostgres  # noqa: E402
from runner.temporal import TemporalDevServer, register_search_attributes  # noqa: E402

DATABASE_NAME = "crowdlending"


def local_dev_codec_endpoint(settings: Settings) -> str | None:
    """In dev, the Temporal UI decodes payloads through the API's local-dev codec: the person at
    this machine reads every loan out of the box. Outside dev, operators ask for a codec link."""
    if settings.ENVIRONMENT != "dev":
        return None
    return f"http://localhost:{settings.API_PORT}/codec/local-dev"


def dev_server(settings: Settings) -> TemporalDevServer:
    """The Temporal dev server as `make run` starts it."""
    return TemporalDevServer(
        settings.DATA_DIR / "temporal",
        settings.TEMPORAL_DEV_PORT,
        settings.TEMPORAL_UI_PORT,
        ui_codec_endpoint=local_dev_codec_endpoint(settings),
    )


def say(message: str) -> None:
    print(f"[make run] {message}", flush=True)


class Supervisor:
    def __init__(self) -> None:
        self.settings = get_settings()
        self.postgres: EmbeddedPostgres | None = None
        self.temporal: TemporalDevServer | None = None
        self.children: list[Child] = []
        self.api_socket: socket.socket | None = None
        self.stopping = False

    def check_ports(self) -> None:
        s = self.settings
        ensure_port_free(s.API_PORT, "the API", s.API_HOST if s.API_HOST != "0.0.0.0" else "127.0.0.1")
        if not s.TEMPORAL_ADDRESS:
            ensure_port_free(s.TEMPORAL_DEV_PORT, "the Temporal dev server")
            ensure_port_free(s.TEMPORAL_UI_PORT, "the Temporal UI")
        if not s.DATABASE_URL:
            ensure_port_free(s.EMBEDDED_POSTGRES_PORT, "the embedded PostgreSQL")

    def start_infrastructure(self) -> dict[str, str]:
        s = self.settings
        env: dict[str, str] = {}
        database_url = s.DATABASE_URL
        if not database_url:
            assert s.EMBEDDED_POSTGRES_PASSWORD and s.EMBEDDED_APP_DB_PASSWORD  # (apply_local_secrets)
            self.postgres = EmbeddedPostgres(
                s.DATA_DIR / "postgres",
                s.EMBEDDED_POSTGRES_PORT,
                password=s.EMBEDDED_POSTGRES_PASSWORD.get_secret_value(),
            )
            say(
                f"starting embedded PostgreSQL on 127.0.0.1:{s.EMBEDDED_POSTGRES_PORT} (data in {self.postgres.pgdata})"
            )
            self.postgres.start()
            # Migrations as the superuser; the API and the worker as a role that may only
            # read and write rows (its privileges come with the migrations).
            env["MIGRATION_DATABASE_URL"] = self.postgres.create_database(DATABASE_NAME)
            app_password = s.EMBEDDED_APP_DB_PASSWORD.get_secret_value()
            self.postgres.ensure_app_role(app_password)
            database_url = self.postgres.url_for(DATABASE_NAME, APP_LOGIN_ROLE, app_password)
        env["DATABASE_URL"] = database_url
        if not s.TEMPORAL_ADDRESS:
            self.temporal = dev_server(s)
            if local_dev_codec_endpoint(s):
                env["LOCAL_DEV_CODEC"] = "true"
            say(f"starting Temporal dev server on 127.0.0.1:{s.TEMPORAL_DEV_PORT}, UI on {s.TEMPORAL_UI_PORT}")
            self.temporal.start()
            env["TEMPORAL_ADDRESS"] = f"127.0.0.1:{s.TEMPORAL_DEV_PORT}"
        return env

    def prepare(self, env: dict[str, str]) -> None:
        os.environ.update(env)
        get_settings.cache_clear()
        settings = get_settings()
        say("applying database migrations")
        for line in migrate_and_seed(settings):
            say(f"seed: {line}")

        async def setup_temporal() -> list[str]:
            client = await connect_temporal(settings)
            return await register_search_attributes(client, settings.TEMPORAL_NAMESPACE)

        added = asyncio.run(setup_temporal())
        say(f"search attributes: {'added ' + ', '.join(added) if added else 'already registered'}")

    def spawn(self, name: str, args: list[str], pass_fds: tuple[int, ...] = ()) -> None:
        self.children.append(Child(name, args, pass_fds))
        self.children[-1].start()

    def start_apps(self) -> None:
        s = get_settings()
        for _ in range(s.WORKER_PROCESSES):
            self.spawn("worker", [sys.executable, str(PROJECT_ROOT / "worker.py")])
        # API_PROCESSES uvicorn processes accept on one listening socket, bound here: the
        # kernel spreads connections over them, and one that dies (and is started again on the
        # same socket) leaves the others serving. Each is supervised like the worker.
        self.api_socket = listening_socket(s.API_HOST, s.API_PORT)
        for _ in range(s.API_PROCESSES):
            self.spawn(
                "api",
                [sys.executable, "-m", "api.serve", "--fd", str(self.api_socket.fileno())],
                pass_fds=(self.api_socket.fileno(),),
            )
        # The socket is ours and accepts at once: the API is up when a process answers on it.
        if not wait_for_http(f"http://{'127.0.0.1' if s.API_HOST == '0.0.0.0' else s.API_HOST}:{s.API_PORT}/livez", 60):
            raise RuntimeError("the API did not start answering")

    def print_urls(self) -> None:
        s = get_settings()
        host = "localhost" if s.API_HOST in ("127.0.0.1", "0.0.0.0") else s.API_HOST
        say("the platform is up:")
        say(f"  Back office (web):   http://{host}:{s.API_PORT}/app/")
        say(f"  API docs (OpenAPI):  http://{host}:{s.API_PORT}/docs")
        say(f"  Health:              http://{host}:{s.API_PORT}/health")
        if self.temporal:
            say(f"  Temporal UI:         http://localhost:{s.TEMPORAL_UI_PORT}")
        else:
            say(f"  Temporal:            {s.TEMPORAL_ADDRESS} (namespace {s.TEMPORAL_NAMESPACE})")
        say("Ctrl-C stops everything; data is kept in " + str(s.DATA_DIR))

    def stop_all(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        for child in reversed(self.children):
            if child.proc is not None and child.proc.poll() is None:
                say(f"stopping {child.name} (pid {child.proc.pid})")
                child.proc.send_signal(signal.SIGTERM)
        for child in reversed(self.children):
            if child.proc is None:
                continue
            try:
                child.proc.wait(30)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait(10)
        if self.api_socket is not None:
            self.api_socket.close()
        if self.temporal:
            say("stopping Temporal dev server")
            self.temporal.stop()
        if self.postgres:
            say("stopping PostgreSQL")
            self.postgres.stop()

    def wait(self) -> int:
        """Supervises until Ctrl-C (or SIGTERM): restarts what dies, reports the servers."""
        servers = [
            ServerWatch("PostgreSQL", self.postgres, self._database_address()),
            ServerWatch("the Temporal server", self.temporal, self._temporal_address()),
        ]
        while True:
            now = time.monotonic()
            for child in self.children:
                child.supervise(now)
            for server in servers:
                server.supervise(now)
            time.sleep(0.5)

    def _database_address(self) -> tuple[str, int] | None:
        if self.postgres is not None:
            return None
        url = make_url(normalize_database_url(get_settings().DATABASE_URL))
        return url.host or "127.0.0.1", url.port or 5432

    def _temporal_address(self) -> tuple[str, int] | None:
        if self.temporal is not None:
            return None
        host, _, port = get_settings().temporal_address.rpartition(":")
        return host or "127.0.0.1", int(port)


SUPERVISOR_ONLY = frozenset(
    {"MIGRATION_DATABASE_URL", "EMBEDDED_POSTGRES_PASSWORD", "EMBEDDED_APP_DB_PASSWORD", "OPERATOR_PASSWORD"}
)

# A child that dies is started again after these delays (the last one repeats); one that ran
# this long before dying starts again from the first.
RESTART_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
HEALTHY_AFTER_SECONDS = 60.0


class Child:
    """The worker or the API: a process of ours, started again when it dies."""

    def __init__(self, name: str, args: list[str], pass_fds: tuple[int, ...] = ()) -> None:
        self.name = name
        self.args = args
        self.pass_fds = pass_fds
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.failures = 0
        self.restart_at: float | None = None

    def start(self) -> None:
        # The worker and the API get the app's database role only: not the owner's URL, not
        # the superuser's password (the supervisor migrates and seeds before they start).
        env = {k: v for k, v in os.environ.items() if k not in SUPERVISOR_ONLY}
        self.proc = subprocess.Popen(
            self.args, env=env, start_new_session=True, preexec_fn=die_with_parent(), pass_fds=self.pass_fds
        )
        self.started_at = time.monotonic()
        self.restart_at = None

    def supervise(self, now: float) -> None:
        assert self.proc is not None
        if self.restart_at is None:
            code = self.proc.poll()
            if code is None:
                return
            if now - self.started_at > HEALTHY_AFTER_SECONDS:
                self.failures = 0
            delay = RESTART_DELAYS[min(self.failures, len(RESTART_DELAYS) - 1)]
            self.failures += 1
            say(f"{self.name} (pid {self.proc.pid}) exited with code {code}; starting it again in {delay:.0f}s")
            self.restart_at = now + delay
        elif now >= self.restart_at:
            try:
                self.start()
            except OSError as exc:  # (out of processes, memory): try again later
                self.restart_at = now + RESTART_DELAYS[-1]
                say(f"{self.name} did not start ({exc}); trying again in {RESTART_DELAYS[-1]:.0f}s")
                return
            say(f"{self.name} started again (pid {self.proc.pid})")


class ServerWatch:
    """PostgreSQL or Temporal: ours (embedded) are started again on the same data when they
    die; external ones are probed and reported when they go away and come back."""

    PROBE_EVERY = 5.0

    def __init__(self, name: str, ours: EmbeddedPostgres | TemporalDevServer | None, address) -> None:
        self.name = name
        self.ours = ours
        self.address = address
        self.down_since: float | None = None
        self.next_check = 0.0
        self.failures = 0

    def supervise(self, now: float) -> None:
        if now < self.next_check:
            return
        if self.ours is not None:
            self._restart_if_dead(now)
        elif self.address is not None:
            self._probe(now)

    def _restart_if_dead(self, now: float) -> None:
        process = self.ours.process if self.ours else None
        code = process.poll() if process is not None else -1
        if code is None:
            self.failures = 0
            return
        assert self.ours is not None
        if process is not None:
            say(f"{self.name} (pid {process.pid}) exited with code {code}; starting it again on the same data")
        try:
            self.ours.stop()  # reaps it, if it was ours
            self.ours.start()
            say(f"{self.name} is back (pid {self.ours.process.pid if self.ours.process else '?'})")
        except Exception as exc:  # e.g. its port still held: try again later
            delay = RESTART_DELAYS[min(self.failures, len(RESTART_DELAYS) - 1)]
            self.failures += 1
            say(f"{self.name} did not start ({exc}); trying again in {delay:.0f}s")
            self.next_check = now + delay

    def _probe(self, now: float) -> None:
        self.next_check = now + self.PROBE_EVERY
        host, port = self.address
        try:
            socket.create_connection((host, port), timeout=2).close()
        except OSError as exc:
            if self.down_since is None:
                self.down_since = now
                say(f"{self.name} at {host}:{port} is unreachable ({exc}); the worker and API retry until it is back")
            return
        if self.down_since is not None:
            say(f"{self.name} at {host}:{port} is reachable again after {now - self.down_since:.0f}s")
            self.down_since = None


def main(after_start=None) -> int:
    """Brings the platform up, runs `after_start(settings)` if given, then waits for Ctrl-C."""
    try:
        secrets_file = apply_local_secrets()
    except LegacyDataDir as exc:
        say(f"cannot start: {exc}")
        return 2
    get_settings.cache_clear()
    say(f"secrets: {secrets_file} (generated at first start, owner-only; settings in the environment win)")
    supervisor = Supervisor()

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    # Ctrl-C, even where it was ignored when we started (a background job of a script)
    signal.signal(signal.SIGINT, on_signal)
    try:
        supervisor.check_ports()
        env = supervisor.start_infrastructure()
        supervisor.prepare(env)
        supervisor.start_apps()
        supervisor.print_urls()
        if after_start is not None:
            after_start(get_settings())
        return supervisor.wait()
    except PortInUse as exc:
        say(f"cannot start: {exc}")
        return 2
    except KeyboardInterrupt:
        say("Ctrl-C: shutting down")
        return 0
    except Exception as exc:  # one clear line, then clean up
        say(f"failed: {exc}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        supervisor.stop_all()


if __name__ == "__main__":
    sys.exit(main())
