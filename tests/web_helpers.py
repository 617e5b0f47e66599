"""Helpers for the back office's tests: logging in through its form, reading its forms."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient

_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
_KEY = re.compile(r'name="idempotency_key" value="([A-Za-z0-9-]+)"')


def csrf_of(page: str) -> str:
    found = _CSRF.search(page)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def keys_of(page: str) -> list[str]:
    return _KEY.findall(page)


def web_login(client: TestClient, email: str, password: str) -> str:
    """Logs in through /app/login; returns the session's CSRF token (from the home page)."""
    form = client.get("/app/login")
    assert form.status_code == 200, form.text
    answer = client.post(
        "/app/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    home = client.get(answer.headers["location"])
    assert home.status_code == 200, home.text
    return csrf_of(home.text)


def text_of(page: str) -> str:
    """The page's visible text, roughly: tags dropped, entities decoded, spaces folded."""
    without_tags = re.sub(r"<[^>]+>", " ", page)
    return re.sub(r"\s+", " ", html.unescape(without_tags))
