"""The back office is a client of the API, in the same process.

Every page reads and writes through the API's own routes (in-process, over ASGI, no
network): the same authorization (api/deps.py, readable_loan, need-to-know), the same
validation, the same Idempotency-Key handling, the same audit. The web layer adds no
permission of its own, so it cannot grant what the API refuses.

Each call carries a short-lived access token minted for the session's user, and the
browser's own address (the API's per-address limits and login limits see the real client).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import Request

from api.client_address import client_address
from core.security import issue_access_token
from models.users import User

INTERNAL_BASE_URL = "http://platform.internal"


@dataclass
class ApiProblem(Exception):
    """The API refused (status >= 400): its problem+json, with field errors by field name."""

    status: int
    title: str
    detail: str
    field_errors: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    retry_after: str | None = None

    def __str__(self) -> str:
        return f"{self.status} {self.title}: {self.detail}"

    @property
    def outcome_unknown(self) -> bool:
        """The request may have been done, or is being done: only the same key may send it
        again (the API keeps only successful answers, so keeping the key never costs anything)."""
        return self.status >= 500 or str(self.body.get("type", "")).endswith("/idempotency-key-in-flight")


def _problem(response: httpx.Response) -> ApiProblem:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    errors: dict[str, str] = {}
    for error in body.get("errors") or []:
        if isinstance(error, dict):
            # the field's path in the body ("amount", "rates_by_grade.B"); a whole-body error: "body"
            name = str(error.get("field") or "") or "body"
            errors.setdefault(name, str(error.get("message") or "invalid value"))
    return ApiProblem(
        status=response.status_code,
        title=str(body.get("title") or response.reason_phrase),
        detail=str(body.get("detail") or response.reason_phrase),
        field_errors=errors,
        body=body,
        retry_after=response.headers.get("retry-after"),
    )


class PlatformApi:
    """The API as this browser's user (or anonymous, for logging in)."""

    def __init__(self, request: Request, user: User | None) -> None:
        self._request = request
        # One short-lived token for all of this page's calls.
        self._token = (
            issue_access_token(request.app.state.settings, user.id, user.role, user.token_version)[0]
            if user is not None
            else None
        )

    def _headers(self, idempotency_key: str | None) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        # An unhandled error in the API comes back as its 500 answer (not raised through the
        # page), so the page can say the outcome is unknown and keep the form's key.
        transport = httpx.ASGITransport(
            app=self._request.app, client=(client_address(self._request), 0), raise_app_exceptions=False
        )
        async with httpx.AsyncClient(transport=transport, base_url=INTERNAL_BASE_URL) as client:
            response = await client.request(
                method,
                path,
                json=json,
                data=data,
                params={k: v for k, v in (params or {}).items() if v not in (None, "")},
                headers=self._headers(idempotency_key),
            )
        if response.status_code >= 400:
            raise _problem(response)
        return response

    async def get(self, path: str, **params: Any) -> Any:
        return (await self.call("GET", path, params=params)).json()

    async def post(self, path: str, body: Any = None, *, idempotency_key: str | None = None) -> Any:
        response = await self.call("POST", path, json=body, idempotency_key=idempotency_key)
        return response.json() if response.content else None

    async def put(self, path: str, body: Any) -> httpx.Response:
        return await self.call("PUT", path, json=body)
