"""All settings of the platform, read once from the environment (and an optional .env file).

The names here are the names used everywhere: the Makefile, docker-compose.yml and the README.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The platform's days: Moscow's, as the 259-FZ year already is.
PLATFORM_TIME_ZONE = "Europe/Moscow"

# A secret that anyone reading this repository knows: accepted only in dev, where it saves a
# newcomer a step; refused in every other environment.
DEV_JWT_SECRET = "dev-only-secret-change-me-0123456789abcdef"
# The same for the key that encrypts Temporal payloads (32 bytes, base64).
DEV_PAYLOAD_KEY_ID = "dev-1"
DEV_PAYLOAD_KEY = "ZGV2LW9ubHktcGF5bG9hZC1rZXktMzItYnl0ZXMhISE="


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    ENVIRONMENT: Literal["dev", "test", "production"] = "dev"

    # PostgreSQL. Empty means "start the embedded server" (make run) or "tests bring their own".
    DATABASE_URL: str = ""
    DB_POOL_SIZE: int = Field(default=10, ge=1, le=200)
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

    # Auth.
    JWT_SECRET: SecretStr = SecretStr(DEV_JWT_SECRET)
    JWT_ALGORITHM: Literal["HS256", "HS384", "HS512"] = "HS256"
    # Access tokens are short-lived; a refresh token (rotated on each use) gets a new one.
    ACCESS_TOKEN_MINUTES: int = Field(default=15, ge=1, le=60)
    REFRESH_TOKEN_DAYS: int = Field(default=14, ge=1, le=90)
    # Login rate limits: failed (or still pending) attempts in the window, per account and per
    # client address. Past either, 429 with Retry-After.
    LOGIN_WINDOW_MINUTES: int = Field(default=15, ge=1, le=24 * 60)
    LOGIN_MAX_FAILURES_PER_ACCOUNT: int = Field(default=5, ge=1)
    LOGIN_MAX_FAILURES_PER_ADDRESS: int = Field(default=30, ge=1)

    # Idempotency-Key: how long a key and its answer are kept (at least a day), and how long
    # a request in progress holds its key before a repeat may take it over (its process died).
    IDEMPOTENCY_KEY_HOURS: int = Field(default=24, ge=24, le=24 * 30)
    IDEMPOTENCY_LEASE_SECONDS: int = Field(default=300, ge=30)

    # Temporal payloads are encrypted (AES-256-GCM) with the key named PAYLOAD_ENCRYPTION_KEY_ID;
    # PAYLOAD_ENCRYPTION_KEYS holds every key still needed to read retained histories, as JSON:
    # {"2026-11": "<32 bytes base64>", "2026-05": "..."}. Rotation: add a key, switch the id.
    PAYLOAD_ENCRYPTION_KEYS: dict[str, SecretStr] = Field(
        default_factory=lambda: {DEV_PAYLOAD_KEY_ID: SecretStr(DEV_PAYLOAD_KEY)}
    )
    PAYLOAD_ENCRYPTION_KEY_ID: str = DEV_PAYLOAD_KEY_ID
    # Where operators' browsers run the Temporal UI: allowed to call the codec endpoint (CORS).
    CODEC_CORS_ORIGINS: list[str] = Field(default_factory=lambda: ["http://localhost:8233", "http://127.0.0.1:8233"])
    # How long a codec link for the Temporal UI works (GET /v1/operator/codec-endpoint).
    CODEC_LINK_HOURS: int = Field(default=8, ge=1, le=24)

    # Seeded by `make run` when both are set.
    OPERATOR_EMAIL: str | None = None
    OPERATOR_PASSWORD: SecretStr | None = None

    # Local runtime (make run): where the embedded PostgreSQL and the Temporal SQLite file live.
    DATA_DIR: Path = PROJECT_ROOT / "data"
    API_HOST: str = "127.0.0.1"
    # Set by `make run` / `make demo` when they start the dev server on this machine: the API
    # answers the dev UI's codec calls from this machine (see api/routers/codec.py). Dev only.
    LOCAL_DEV_CODEC: bool = False
    # uvicorn's log level and its access log (one line per request; `make demo` turns it off)
    API_LOG_LEVEL: Literal["critical", "error", "warning", "info", "debug"] = "info"
    API_ACCESS_LOG: bool = True
    API_PORT: int = 8000
    EMBEDDED_POSTGRES_PORT: int = 55432
    TEMPORAL_DEV_PORT: int = 7233
    TEMPORAL_UI_PORT: int = 8233

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

    @field_validator("PLATFORM_TIME_ZONE")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: an IANA name such as Europe/Moscow") from None
        return value

    @model_validator(mode="after")
    def _check_payload_keys(self) -> Settings:
        from core.payload_codec import parse_key  # (here: settings stay import-light)

        if self.PAYLOAD_ENCRYPTION_KEY_ID not in self.PAYLOAD_ENCRYPTION_KEYS:
            raise ValueError("PAYLOAD_ENCRYPTION_KEY_ID must name one of PAYLOAD_ENCRYPTION_KEYS")
        for key in self.PAYLOAD_ENCRYPTION_KEYS.values():
            parse_key(key.get_secret_value())
        return self

    def payload_keys(self) -> dict[str, bytes]:
        from core.payload_codec import parse_key

        return {key_id: parse_key(key.get_secret_value()) for key_id, key in self.PAYLOAD_ENCRYPTION_KEYS.items()}

    @model_validator(mode="after")
    def _refuse_unsafe_outside_dev(self) -> Settings:
        # Every problem at once: whoever deploys fixes them in one go.
        problems = []
        if self.ENVIRONMENT != "dev":
            secret = self.JWT_SECRET.get_secret_value()
            if secret == DEV_JWT_SECRET:
                problems.append("JWT_SECRET still has the development default; set a real secret")
            elif len(secret) < 32:
                problems.append("JWT_SECRET must be at least 32 characters outside dev")
            if any(key.get_secret_value() == DEV_PAYLOAD_KEY for key in self.PAYLOAD_ENCRYPTION_KEYS.values()):
                problems.append("PAYLOAD_ENCRYPTION_KEYS still holds the development key; set real keys")
        if self.LOCAL_DEV_CODEC and self.ENVIRONMENT != "dev":
            problems.append("LOCAL_DEV_CODEC decodes for anyone on this machine and is for dev only")
        if self.ENVIRONMENT == "production" and self.LOAN_TIME_SCALE != 1:
            problems.append("LOAN_TIME_SCALE is a sandbox clock and is refused in production")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def local_ui_origins(self) -> list[str]:
        """Where the dev server's UI runs on this machine (its browser calls the codec)."""
        return [f"http://localhost:{self.TEMPORAL_UI_PORT}", f"http://127.0.0.1:{self.TEMPORAL_UI_PORT}"]

    @property
    def documents_dir(self) -> Path:
        return self.DOCUMENTS_DIR or self.DATA_DIR / "documents"

    @property
    def temporal_address(self) -> str:
        return self.TEMPORAL_ADDRESS or f"localhost:{self.TEMPORAL_DEV_PORT}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
