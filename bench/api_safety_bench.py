"""What the API's safety costs: sealing and opening Temporal payloads, an Idempotency-Key on
a money POST, and a login with its rate-limit bookkeeping.

The HTTP figures are in-process (Starlette's test client, one client at a time) on the
same PostgreSQL: they isolate the added work from the network and uvicorn."""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import time
import uuid

from fastapi.testclient import TestClient
from sqlalchemy.orm import sessionmaker
from temporalio.api.common.v1 import Payload

from api.main import create_app
from api.routers.users import create_user
from bench import throwaway_secrets
from core.db import make_engine, unit_of_work
from core.payload_codec import EncryptionCodec
from core.settings import Settings


def _percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    return (
        statistics.mean(ordered) * 1000,
        ordered[len(ordered) // 2] * 1000,
        ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    )


async def _codec_rows(quick: bool) -> list[str]:
    codec = EncryptionCodec({"k": os.urandom(32)}, "k")
    rows = []
    for size in (1024, 64 * 1024):
        payload = Payload(metadata={"encoding": b"json/plain"}, data=os.urandom(size))
        count = 2000 if quick else 20000
        started = time.perf_counter()
        for _ in range(count):
            await codec.decode(await codec.encode([payload]))
        seconds = time.perf_counter() - started
        rows.append(
            f"| seal + open a {size // 1024} KiB payload | {count:,} | {seconds / count * 1e6:,.1f} µs | "
            f"{size * count / seconds / 2**20:,.0f} MiB/s |"
        )
    return ["| codec | payloads | per payload | throughput |", "|---|---:|---:|---:|", *rows]


def _timed(call, count: int) -> list[float]:
    samples = []
    for n in range(count):
        started = time.perf_counter()
        call(n)
        samples.append(time.perf_counter() - started)
    return samples


def run_api_safety_bench(database_url: str, quick: bool) -> tuple[str, list[str]]:
    codec_table = asyncio.run(_codec_rows(quick))
    settings = Settings(
        _env_file=None,
        ENVIRONMENT="dev",
        DATABASE_URL=database_url,
        TEMPORAL_ADDRESS="127.0.0.1:1",
        **{**throwaway_secrets.SETTINGS, "JWT_SECRET": secrets.token_urlsafe(48)},
        LOGIN_MAX_FAILURES_PER_ADDRESS=10**6,
    )
    engine = make_engine(database_url, 4)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    email, password = f"bench-{uuid.uuid4().hex[:8]}@example.com", "bench password 123"
    with unit_of_work(factory) as session:
        create_user(session, email, password, "investor")
    count = 100 if quick else 1000
    rows = ["| request | requests | mean ms | p50 ms | p99 ms |", "|---|---:|---:|---:|---:|"]
    with TestClient(create_app(settings)) as client:
        token = client.post("/v1/auth/token", data={"username": email, "password": password}).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        body = {"amount": "10.00"}
        cases = {
            "POST /v1/wallets/deposits, no key": lambda n: client.post(
                "/v1/wallets/deposits", json=body, headers=headers
            ),
            "POST /v1/wallets/deposits, a new Idempotency-Key": lambda n: client.post(
                "/v1/wallets/deposits", json=body, headers={**headers, "Idempotency-Key": f"new-{n}"}
            ),
            "POST /v1/wallets/deposits, a replayed key": lambda n: client.post(
                "/v1/wallets/deposits", json=body, headers={**headers, "Idempotency-Key": "new-0"}
            ),
            "POST /v1/auth/token (Argon2 + limits)": lambda n: client.post(
                "/v1/auth/token", data={"username": email, "password": password}
            ),
        }
        for name, call in cases.items():
            call(0)  # warm up
            samples = _timed(call, count if "token" not in name else max(20, count // 10))
            mean, p50, p99 = _percentiles(samples)
            rows.append(f"| {name} | {len(samples):,} | {mean:.2f} | {p50:.2f} | {p99:.2f} |")
    engine.dispose()
    notes = [
        "A new key costs two short transactions of its own (take the key, store the answer); a replay "
        "is one, and does none of the route's work.",
        "Sealing a payload is AES-256-GCM over its bytes plus a fresh nonce; a loan's inputs are about 1 KiB.",
    ]
    return "\n".join([*codec_table, "", *rows]), notes
