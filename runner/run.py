"""`make run`: the whole platform on one machine, from nothing but Python.

Starts (unless told to use existing ones) an embedded PostgreSQL and the Temporal dev server
with its UI, registers the search attributes, applies the migrations, seeds, then runs the
worker and the API as child processes. Ctrl-C stops every child, in reverse order, by pid.
Data stays in DATA_DIR, so a second `make run` finds the same users and loans.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import warnings

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

from core.settings import PROJECT_ROOT, Settings, get_settings  # noqa: E402
from core.temporal_client import connect_temporal  # noqa: E402
from runner.migrate_and_seed import migrate_and_seed  # noqa: E402
from runner.ports import PortInUse, ensure_port_free, wait_for_port  # noqa: E402
from runner.postgres import EmbeddedPostgres  # noqa: E402
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
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
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
            self.postgres = EmbeddedPostgres(s.DATA_DIR / "postgres", s.EMBEDDED_POSTGRES_PORT)
            say(
                f"starting embedded PostgreSQL on 127.0.0.1:{s.EMBEDDED_POSTGRES_PORT} (data in {self.postgres.pgdata})"
            )
            self.postgres.start()
            database_url = self.postgres.create_database(DATABASE_NAME)
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

    def spawn(self, name: str, args: list[str]) -> None:
        proc = subprocess.Popen(args, env=os.environ.copy(), start_new_session=True)
        self.children.append((name, proc))

    def start_apps(self) -> None:
        s = get_settings()
        self.spawn("worker", [sys.executable, str(PROJECT_ROOT / "worker.py")])
        self.spawn(
            "api",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api.main:app_factory",
                "--factory",
                "--host",
                s.API_HOST,
                "--port",
                str(s.API_PORT),
                "--log-level",
                s.API_LOG_LEVEL,
                *([] if s.API_ACCESS_LOG else ["--no-access-log"]),
            ],
        )
        if not wait_for_port(s.API_PORT, 60, "127.0.0.1" if s.API_HOST == "0.0.0.0" else s.API_HOST):
            raise RuntimeError("the API did not start listening")

    def print_urls(self) -> None:
        s = get_settings()
        host = "localhost" if s.API_HOST in ("127.0.0.1", "0.0.0.0") else s.API_HOST
        say("the platform is up:")
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
        for name, proc in reversed(self.children):
            if proc.poll() is None:
                say(f"stopping {name} (pid {proc.pid})")
                proc.send_signal(signal.SIGTERM)
        for _name, proc in reversed(self.children):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self.temporal:
            say("stopping Temporal dev server")
            self.temporal.stop()
        if self.postgres:
            say("stopping PostgreSQL")
            self.postgres.stop()

    def wait(self) -> int:
        while True:
            for name, proc in self.children:
                code = proc.poll()
                if code is not None:
                    say(f"{name} exited with code {code}; stopping the rest")
                    return code or 1
            time.sleep(0.5)


def main(after_start=None) -> int:
    """Brings the platform up, runs `after_start(settings)` if given, then waits for Ctrl-C."""
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
