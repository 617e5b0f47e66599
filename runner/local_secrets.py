"""The secrets of a platform run on one machine (`make run`, `make demo`): generated at first
start, kept in DATA_DIR/secrets.json (readable by its owner only), reused on every start.

No secret the repository contains protects a running platform: there are no built-in
values. A setting given in the environment (or .env) still wins over the generated one, so
a deployment's own secrets are never replaced.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.settings import PROJECT_ROOT

SECRETS_FILE = "secrets.json"
# Settings that are secrets: never in the environment of a process that does not need them
# (PostgreSQL, the Temporal server; see without_secrets).
SECRET_SETTINGS = frozenset(
    {
        "JWT_SECRET",
        "PAYLOAD_ENCRYPTION_KEYS",
        "PAYLOAD_ENCRYPTION_KEY_ID",
        "EMBEDDED_POSTGRES_PASSWORD",
        "EMBEDDED_APP_DB_PASSWORD",
        "OPERATOR_PASSWORD",
        "DATABASE_URL",
        "MIGRATION_DATABASE_URL",
        "TEMPORAL_API_KEY",
    }
)


class LegacyDataDir(RuntimeError):
    """A data folder made before secrets were generated: its loans' histories are sealed with
    a key this repository published, which no platform accepts any more."""


def without_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """The environment for the database and Temporal servers: theirs, without ours."""
    return {name: value for name, value in env.items() if name not in SECRET_SETTINGS}


class _GivenSecrets(BaseSettings):
    """What the environment and .env already say, read the way Settings reads them."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    DATA_DIR: Path = PROJECT_ROOT / "data"
    JWT_SECRET: SecretStr | None = None
    PAYLOAD_ENCRYPTION_KEYS: dict[str, SecretStr] | None = None
    EMBEDDED_POSTGRES_PASSWORD: SecretStr | None = None
    EMBEDDED_APP_DB_PASSWORD: SecretStr | None = None
    OPERATOR_EMAIL: str | None = None
    OPERATOR_PASSWORD: SecretStr | None = None


def _generate() -> dict[str, str]:
    key_id = f"local-{datetime.now(UTC):%Y%m%d}"
    return {
        "JWT_SECRET": secrets.token_urlsafe(48),
        "PAYLOAD_ENCRYPTION_KEYS": json.dumps({key_id: base64.b64encode(secrets.token_bytes(32)).decode()}),
        "PAYLOAD_ENCRYPTION_KEY_ID": key_id,
        "EMBEDDED_POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "EMBEDDED_APP_DB_PASSWORD": secrets.token_urlsafe(24),
        # The seeded operator's (OPERATOR_EMAIL, e.g. `make demo`'s) when no password is given.
        "OPERATOR_PASSWORD": secrets.token_urlsafe(18),
    }


def _read(path: Path) -> dict[str, str]:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        # Someone loosened it (a copy, an archive): the owner's again, before reading.
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    values = json.loads(path.read_text())
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise RuntimeError(f"{path} is not a JSON object of strings; move it away to generate new secrets")
    return values


def _write_new(path: Path, values: dict[str, str]) -> None:
    """Owner-only from its first byte (no window where others may read), and whole or absent."""
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(values, file, indent=2)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)


def load_or_create(data_dir: Path) -> dict[str, str]:
    """This DATA_DIR's secrets, generated the first time (and any missing one added)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SECRETS_FILE
    made_before = [name for name in ("postgres", "temporal") if (data_dir / name).exists()]
    if not path.exists() and made_before:
        raise LegacyDataDir(
            f"{data_dir} has a database and Temporal history but no {SECRETS_FILE}: it was made by a "
            "version of the platform (or its secrets file was removed) that sealed Temporal histories, and "
            "signed tokens, with secrets published in its repository; none is accepted any more, so "
            "its loans could not go on. It holds a local sandbox only: `make clean-data` (or remove "
            f"{data_dir}) and start again."
        )
    stored = _read(path) if path.exists() else {}
    complete = {**_generate(), **stored}
    if complete != stored:
        _write_new(path, complete)
    return complete


def apply_local_secrets() -> Path:
    """Puts this machine's generated secrets into os.environ where nothing else gives them,
    before any Settings are read; returns the file. The API and the worker, started as
    children, inherit them."""
    given = _GivenSecrets()
    path = given.DATA_DIR / SECRETS_FILE
    stored = load_or_create(given.DATA_DIR)
    if given.JWT_SECRET is None:
        os.environ["JWT_SECRET"] = stored["JWT_SECRET"]
    if given.PAYLOAD_ENCRYPTION_KEYS is None:
        os.environ["PAYLOAD_ENCRYPTION_KEYS"] = stored["PAYLOAD_ENCRYPTION_KEYS"]
        os.environ["PAYLOAD_ENCRYPTION_KEY_ID"] = stored["PAYLOAD_ENCRYPTION_KEY_ID"]
    for name in ("EMBEDDED_POSTGRES_PASSWORD", "EMBEDDED_APP_DB_PASSWORD"):
        if getattr(given, name) is None:
            os.environ[name] = stored[name]
    if given.OPERATOR_EMAIL and given.OPERATOR_PASSWORD is None:
        os.environ["OPERATOR_PASSWORD"] = stored["OPERATOR_PASSWORD"]
    return path
