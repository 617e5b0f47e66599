"""All settings of the platform, read once from the environment (and an optional .env file).

The names here are the names used everywhere: the Makefile, docker-compose.yml and the README.
"""

from __future__ import annotations

from functools import lru_cache
from ipaddress import ip_network
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The platform's days: Moscow's, as the 259-FZ year already is.
PLATFORM_TIME_ZONE = "Europe/Moscow"

# Secrets that older versions of this repository shipped as defaults: anyone can read them,
# so they are refused everywhere (a .env copied from an old checkout must not protect a
# platform). There are no built-in secrets: `make run` and `make demo` generate them
# (runner/local_secrets.py), deployments set them, tests bring their own.
PUBLISHED_SECRETS = frozenset(
    {"dev-only-secret-change-me-0123456789abcdef", "ZGV2LW9ubHktcGF5bG9hZC1rZXktMzItYnl0ZXMhISE="}
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    ENVIRONMENT: Literal["dev", "test", "production"] = "dev"

    # PostgreSQL. Empty means "start the embedded server" (make run) or "tests bring their own".
    # The API and the worker connect with DATABASE_URL as a role that may only read and write
    # rows (the group role crowdlending_app); migrations run as the tables' owner,
    # MIGRATION_DATABASE_URL (empty: DATABASE_URL, for a database with a single role).
    DATABASE_URL: str = ""
    MIGRATION_DATABASE_URL: str = ""
    # Connections a process keeps open (as many again may open for a burst, then close). The
    # default covers an API process's threads (API_THREADS and asyncio's few) and a worker's
    # activity threads, so a loaded process does not open and close connections per request.
    DB_POOL_SIZE: int = Field(default=24, ge=1, le=200)
    # Threads of an API process that run blocking work (database sessions, sync routes): more
    # than the cores, as they mostly wait on PostgreSQL; within the pool (at most twice
    # DB_POOL_SIZE, the pool with its burst).
    API_THREADS: int = Field(default=16, ge=1, le=200)
    # An API process's connections for reads that are one statement (the current user, a loan,
    # a wallet, the funding list), on its event loop: more reads at once wait for one of these
    # (a read holds one for about a millisecond). An API process may so hold 2 x DB_POOL_SIZE
    # + DB_READ_POOL_SIZE connections, a worker 2 x DB_POOL_SIZE: PostgreSQL's max_connections
    # must cover them all (README, "Settings").
    DB_READ_POOL_SIZE: int = Field(default=8, ge=1, le=200)
    # A worker frozen inside a loan activity's transaction loses it (and the loan's lock)
    # after this many seconds idle, so the retry on another worker goes on.
    DB_IDLE_IN_TRANSACTION_SECONDS: int = Field(default=20, ge=1, le=3600)

    # Temporal. Empty TEMPORAL_ADDRESS means "make run starts the dev server on localhost:7233".
    TEMPORAL_ADDRESS: str = ""
    TEMPORAL_NAMESPACE: str = "default"
    TASK_QUEUE: str = "loans"
    # A managed Temporal service (Temporal Cloud or a self-hosted cluster behind mTLS):
    # either an API key, or a client certificate and key (paths to PEM files).
    TEMPORAL_API_KEY: SecretStr | None = None
    TEMPORAL_TLS: bool = False
    TEMPORAL_TLS_CLIENT_CERT_PATH: Path | None = None
    TEMPORAL_TLS_CLIENT_KEY_PATH: Path | None = None
    TEMPORAL_TLS_SERVER_CA_PATH: Path | None = None

    # Auth. Required (32+ characters); `make run` generates it into DATA_DIR/secrets.json.
    JWT_SECRET: SecretStr = SecretStr("")
    JWT_ALGORITHM: Literal["HS256", "HS384", "HS512"] = "HS256"
    # Access tokens are short-lived; a refresh token (rotated on each use) gets a new one.
    ACCESS_TOKEN_MINUTES: int = Field(default=15, ge=1, le=60)
    REFRESH_TOKEN_DAYS: int = Field(default=14, ge=1, le=90)
    # The web back office (/app/): a session lasts at most WEB_SESSION_HOURS from its login
    # (logging out, blocking the user or revoking their sessions ends it at once). Its cookie
    # is Secure unless WEB_COOKIE_SECURE says otherwise; unset: Secure outside dev and test,
    # where the browser talks plain http to localhost.
    WEB_SESSION_HOURS: int = Field(default=8, ge=1, le=24)
    WEB_COOKIE_SECURE: bool | None = None
    # Login limits (auth/login_limits.py): failed (or still pending) attempts in the window.
    # For one account from one address, the first LOGIN_FREE_FAILURES are free, then each
    # attempt waits twice as long as the one before (LOGIN_FIRST_DELAY_SECONDS, doubling, up to
    # the window). From addresses the account has not logged in from, all together, the same
    # after LOGIN_FREE_FAILURES_PER_ACCOUNT: a spread-out guesser is slowed, the owner at home
    # is not. One address failing on any accounts past LOGIN_MAX_FAILURES_PER_ADDRESS: 429.
    LOGIN_WINDOW_MINUTES: int = Field(default=15, ge=1, le=24 * 60)
    LOGIN_FREE_FAILURES: int = Field(default=5, ge=1)
    LOGIN_FREE_FAILURES_PER_ACCOUNT: int = Field(default=20, ge=1)
    LOGIN_FIRST_DELAY_SECONDS: int = Field(default=2, ge=1, le=3600)
    LOGIN_MAX_FAILURES_PER_ADDRESS: int = Field(default=30, ge=1)
    # An address the account logged in from stays known this long.
    LOGIN_KNOWN_ADDRESS_DAYS: int = Field(default=90, ge=1, le=3650)
    # Reverse proxies (IPs or CIDRs) whose X-Forwarded-For is believed; none by default, so a
    # client cannot pick its own address. uvicorn runs with --no-proxy-headers: this is the
    # only place the header is read.
    TRUSTED_PROXIES: list[str] = Field(default_factory=list)

    # Idempotency-Key: how long a key and its answer are kept (at least a day), and how long
    # a request in progress holds its key before a repeat may take it over (its process died).
    IDEMPOTENCY_KEY_HOURS: int = Field(default=24, ge=24, le=24 * 30)
    IDEMPOTENCY_LEASE_SECONDS: int = Field(default=300, ge=30)

    # Resource limits (api/body_limit.py, api/request_limits.py, documents/render_pool.py).
    # A request body larger than this is refused (413) before it is read to the end. The
    # codec endpoints carry Temporal payloads: a gRPC message is at most 4 MiB, 5.4 in base64.
    MAX_REQUEST_BODY_BYTES: int = Field(default=1024 * 1024, ge=1024)
    MAX_CODEC_BODY_BYTES: int = Field(default=8 * 1024 * 1024, ge=1024)
    # Calls that need no token, per client address (429 with Retry-After past them): sign-ups
    # an hour, and every other such POST (refresh, logout, calculator) a minute.
    SIGNUPS_PER_ADDRESS_PER_HOUR: int = Field(default=10, ge=1)
    ANONYMOUS_POSTS_PER_ADDRESS_PER_MINUTE: int = Field(default=60, ge=1)
    # The API renders trail.pdf in this many processes of its own, with at most
    # PDF_RENDERS_WAITING more renders waiting for one; past that, 503 with Retry-After.
    PDF_RENDER_PROCESSES: int = Field(default=1, ge=1, le=32)
    PDF_RENDERS_WAITING: int = Field(default=4, ge=0, le=1000)

    # Temporal payloads are encrypted (AES-256-GCM) with the key named PAYLOAD_ENCRYPTION_KEY_ID;
    # PAYLOAD_ENCRYPTION_KEYS holds every key still needed to read retained histories, as JSON:
    # {"2026-11": "<32 bytes base64>", "2026-05": "..."}. Rotation: add a key, switch the id.
    # Required; `make run` generates a key into DATA_DIR/secrets.json.
    PAYLOAD_ENCRYPTION_KEYS: dict[str, SecretStr] = Field(default_factory=dict)
    PAYLOAD_ENCRYPTION_KEY_ID: str = ""
    # Where operators' browsers run the Temporal UI: allowed to call the codec endpoint (CORS).
    CODEC_CORS_ORIGINS: list[str] = Field(default_factory=lambda: ["http://localhost:8233", "http://127.0.0.1:8233"])
    # How long a codec link for the Temporal UI works (GET /v1/operator/codec-endpoint).
    CODEC_LINK_HOURS: int = Field(default=8, ge=1, le=24)

    # Seeded by `make run` when both are set.
    OPERATOR_EMAIL: str | None = None
    OPERATOR_PASSWORD: SecretStr | None = None

    # Local runtime (make run): where the embedded PostgreSQL, the Temporal SQLite file and the
    # generated secrets (secrets.json, owner-only) live.
    DATA_DIR: Path = PROJECT_ROOT / "data"
    # The embedded PostgreSQL's passwords (scram-sha-256; no trust): its superuser, which runs
    # the migrations, and the app's role. Generated into DATA_DIR/secrets.json when unset.
    EMBEDDED_POSTGRES_PASSWORD: SecretStr | None = None
    EMBEDDED_APP_DB_PASSWORD: SecretStr | None = None
    API_HOST: str = "127.0.0.1"
    # Set by `make run` / `make demo` when they start the dev server on this machine: the API
    # answers the dev UI's codec calls from this machine (see api/routers/codec.py). Dev only.
    LOCAL_DEV_CODEC: bool = False
    # uvicorn's log level and its access log (one line per request; `make demo` turns it off)
    API_LOG_LEVEL: Literal["critical", "error", "warning", "info", "debug"] = "info"
    API_ACCESS_LOG: bool = True
    API_PORT: int = 8000
    # `make run`: API processes sharing the API's port (the kernel spreads connections over
    # them; each is supervised), and worker processes polling the same task queue.
    API_PROCESSES: int = Field(default=2, ge=1, le=64)
    WORKER_PROCESSES: int = Field(default=1, ge=1, le=64)
    # Workflows a worker keeps in memory between their tasks (its sticky cache): a loan not in
    # it is replayed from its history when it next wakes (a due date, an investment: a few ms
    # of CPU). Sized on purpose: it bounds the loans held in memory whatever the number of open
    # loans (about 240 KiB each; the sandboxes share the workflow modules' compiled code,
    # core/workflow_code_sharing.py), and should hold the loans that wake at one instant (a due
    # day's loans on this worker: make bench's due-date burst wakes 200), or each of them is
    # replayed at every task of that instant. README's row gives the measured figures.
    WORKER_MAX_CACHED_WORKFLOWS: int = Field(default=250, ge=0, le=100_000)
    # Processes a worker renders its PDFs in (CPU-bound: in the worker's own process they would
    # hold its GIL). A loan repays while its agreements render (its trades wait for them): make
    # bench's lifecycle gives when the last agreement of 100 loans paid out within seconds of
    # each other was registered (bench/results-platform.md, with two).
    # Each takes a document thread and a database connection (worker.py sizes its pool).
    WORKER_DOCUMENT_RENDERERS: int = Field(default=2, ge=1, le=16)
    EMBEDDED_POSTGRES_PORT: int = 55432
    TEMPORAL_DEV_PORT: int = 7233
    TEMPORAL_UI_PORT: int = 8233
    # Where operators open the Temporal UI (links to a loan's workflow in the back office),
    # e.g. https://temporal.example.com. Empty: the dev server's UI on this machine
    # (http://localhost:TEMPORAL_UI_PORT) in dev and test, no link in production.
    TEMPORAL_UI_URL: str = ""

    # The register of documents: PDFs stored content-addressed (sha256) under this folder.
    # Empty: DATA_DIR/documents. An S3-compatible store would replace documents/store.py.
    DOCUMENTS_DIR: Path | None = None
    # The platform as it appears in agreements and statements.
    PLATFORM_NAME: str = "Crowdlending Platform LLC"
    PLATFORM_DETAILS: str = (
        "Investment platform operator under Federal Law 259-FZ; register of agreements kept electronically"
    )

    # The sandbox clock: divides the repayment-phase timers. 1 in production.
    LOAN_TIME_SCALE: int = Field(default=1, ge=1)
    # Due dates are whole days in this time zone (an IANA name): the first collection attempt
    # runs as the due day starts there, and money arriving before it ends is on time.
    PLATFORM_TIME_ZONE: str = PLATFORM_TIME_ZONE

    @field_validator("TRUSTED_PROXIES")
    @classmethod
    def _proxy_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"TRUSTED_PROXIES: {entry!r} is not an IP address or network") from None
        return value

    @field_validator("PLATFORM_TIME_ZONE")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: an IANA name such as Europe/Moscow") from None
        return value

    @model_validator(mode="after")
    def _check_secrets(self) -> Settings:
        from core.payload_codec import parse_key  # (here: settings stay import-light)

        # Every problem at once: whoever deploys fixes them in one go.
        problems = []
        secret = self.JWT_SECRET.get_secret_value()
        if not secret:
            problems.append(
                "JWT_SECRET is not set: `make run` and `make demo` generate one in DATA_DIR/secrets.json; "
                "elsewhere set it (32+ random characters)"
            )
        elif secret in PUBLISHED_SECRETS:
            problems.append("JWT_SECRET is a value published in this repository; set a real secret")
        elif len(secret) < 32:
            problems.append("JWT_SECRET must be at least 32 characters")
        if not self.PAYLOAD_ENCRYPTION_KEYS:
            problems.append(
                "PAYLOAD_ENCRYPTION_KEYS is not set: `make run` and `make demo` generate a key in "
                "DATA_DIR/secrets.json; elsewhere set it"
            )
        elif self.PAYLOAD_ENCRYPTION_KEY_ID not in self.PAYLOAD_ENCRYPTION_KEYS:
            problems.append("PAYLOAD_ENCRYPTION_KEY_ID must name one of PAYLOAD_ENCRYPTION_KEYS")
        for key in self.PAYLOAD_ENCRYPTION_KEYS.values():
            if key.get_secret_value() in PUBLISHED_SECRETS:
                problems.append("PAYLOAD_ENCRYPTION_KEYS holds a key published in this repository; set real keys")
            else:
                parse_key(key.get_secret_value())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def payload_keys(self) -> dict[str, bytes]:
        from core.payload_codec import parse_key

        return {key_id: parse_key(key.get_secret_value()) for key_id, key in self.PAYLOAD_ENCRYPTION_KEYS.items()}

    @model_validator(mode="after")
    def _refuse_unsafe_outside_dev(self) -> Settings:
        # Every problem at once: whoever deploys fixes them in one go.
        problems = []
        if self.LOCAL_DEV_CODEC and self.ENVIRONMENT != "dev":
            problems.append("LOCAL_DEV_CODEC decodes for anyone on this machine and is for dev only")
        if self.ENVIRONMENT == "production" and self.LOAN_TIME_SCALE != 1:
            problems.append("LOAN_TIME_SCALE is a sandbox clock and is refused in production")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _threads_within_the_pool(self) -> Settings:
        # A thread that waits for a connection holds its request for the pool's timeout. (A
        # pool opens up to DB_POOL_SIZE connections more for a burst: core/db.make_engine.)
        if self.API_THREADS > 2 * self.DB_POOL_SIZE:
            raise ValueError(
                f"API_THREADS ({self.API_THREADS}) must be at most twice DB_POOL_SIZE ({self.DB_POOL_SIZE}): "
                "more threads than connections wait for one"
            )
        return self

    @property
    def web_cookie_secure(self) -> bool:
        if self.WEB_COOKIE_SECURE is not None:
            return self.WEB_COOKIE_SECURE
        return self.ENVIRONMENT == "production"

    @property
    def local_ui_origins(self) -> list[str]:
        """Where the dev server's UI runs on this machine (its browser calls the codec)."""
        return [f"http://localhost:{self.TEMPORAL_UI_PORT}", f"http://127.0.0.1:{self.TEMPORAL_UI_PORT}"]

    @property
    def migration_database_url(self) -> str:
        return self.MIGRATION_DATABASE_URL or self.DATABASE_URL

    @property
    def documents_dir(self) -> Path:
        return self.DOCUMENTS_DIR or self.DATA_DIR / "documents"

    @property
    def temporal_address(self) -> str:
        return self.TEMPORAL_ADDRESS or f"localhost:{self.TEMPORAL_DEV_PORT}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
