"""Secrets for one benchmark run, made at import: the platform has no built-in ones."""

from __future__ import annotations

import base64
import json
import secrets

from pydantic import SecretStr

JWT_SECRET = secrets.token_urlsafe(48)
PAYLOAD_KEY_ID = "bench"
PAYLOAD_KEYS = {PAYLOAD_KEY_ID: SecretStr(base64.b64encode(secrets.token_bytes(32)).decode())}
POSTGRES_PASSWORD = secrets.token_urlsafe(18)

# For Settings(...) in this process.
SETTINGS = {
    "JWT_SECRET": JWT_SECRET,
    "PAYLOAD_ENCRYPTION_KEYS": PAYLOAD_KEYS,
    "PAYLOAD_ENCRYPTION_KEY_ID": PAYLOAD_KEY_ID,
}
# For the environment of the processes a benchmark starts.
ENVIRONMENT = {
    "JWT_SECRET": JWT_SECRET,
    "PAYLOAD_ENCRYPTION_KEYS": json.dumps({k: v.get_secret_value() for k, v in PAYLOAD_KEYS.items()}),
    "PAYLOAD_ENCRYPTION_KEY_ID": PAYLOAD_KEY_ID,
}
