"""The API's Temporal client: connected once (in the lifespan), reconnected if lost."""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.service import RPCError

from core.errors import ServiceUnavailable
from core.settings import Settings
from core.temporal_client import connect_temporal

CONNECT_TIMEOUT_SECONDS = 10.0


class TemporalClientHolder:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await asyncio.wait_for(connect_temporal(self._settings), CONNECT_TIMEOUT_SECONDS)
                except (TimeoutError, RPCError, RuntimeError, OSError) as exc:
                    raise ServiceUnavailable(
                        f"the workflow service is not reachable ({type(exc).__name__}); nothing was done, send again"
                    ) from None
            return self._client

    def set(self, client: Client) -> None:
        self._client = client

    async def check(self, timeout: float = 3.0) -> None:
        client = await asyncio.wait_for(self.get(), timeout)
        await asyncio.wait_for(client.service_client.check_health(), timeout)
