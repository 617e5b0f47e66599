"""Helpers for API tests: an app on the test's own database, users and their tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fastapi.testclient import TestClient


@dataclass
class Account:
    id: str
    email: str
    password: str
    role: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def login(client: TestClient, email: str, password: str) -> str:
    response = client.post("/v1/auth/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def sign_up(
    client: TestClient, role: str, email: str | None = None, password: str = "correct horse battery"
) -> Account:
    email = email or f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    response = client.post("/v1/users", json={"email": email, "password": password, "role": role})
    assert response.status_code == 201, response.text
    return Account(
        id=response.json()["id"], email=email, password=password, role=role, token=login(client, email, password)
    )
