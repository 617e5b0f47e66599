"""Rendering the back office's pages: the templates, their filters, and the notices a
redirect may name (a fixed table: nothing a URL carries is ever shown as text)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from web.session import CSRF_FIELD, WebSession

TEMPLATES_DIR = Path(__file__).parent / "templates"

# Every page: no script, no framing, no sniffing, never cached. Set on each rendered page (an
# error page drawn by Starlette's outermost error handler passes no middleware) and by
# web/app.py's middleware on everything else under /app.
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


NOTICES = {
    "logged-out": "You are logged out.",
    "deposit-confirmed": "The deposit is confirmed: the money is in the wallet.",
    "deposit-rejected": "The deposit is rejected.",
    "withdrawal-paid": "The withdrawal is marked paid out.",
    "withdrawal-rejected": "The withdrawal is rejected; the money is back in the wallet.",
    "loan-approved": "The loan is approved: it goes to funding.",
    "loan-rejected": "The loan is rejected.",
    "product-created": "The product is created.",
    "product-changed": "A new version of the product is saved.",
    "product-unchanged": "Nothing changed: no new version was written.",
    "deposit-announced": "Deposit announced: the money is in your wallet once an operator confirms the bank payment.",
    "withdrawal-requested": "Withdrawal requested: the money is reserved until it is paid out.",
    "invested": "Invested: the money is reserved for the loan until it is funded.",
    "rule-saved": "Your auto-invest rule is saved.",
    "listed": "Listed: your offer is on the secondary market until it is bought or you cancel it.",
    "listing-cancelled": "The listing is cancelled: what was not sold stays yours.",
    "bought": "Bought: the claim is yours; it is among your holdings and its installments are paid to you from now on.",
    "simulation-saved": "Simulation saved. You can apply for a loan from it.",
    "loan-requested": "Your loan request is in: it is being scored.",
    "repaid-early": "The loan is repaid in full.",
    "profile-saved": "Your profile is saved: scoring reads it when you apply.",
}

ROLE_HOMES = {
    "operator": "/app/operator",
    "compliance": "/app/compliance",
    "investor": "/app/investor",
    "borrower": "/app/borrower",
}

NAVIGATION = {
    "operator": [
        ("/app/operator", "Home"),
        ("/app/operator/payments", "Payments"),
        ("/app/operator/reviews", "Reviews"),
        ("/app/operator/loans", "Loans"),
        ("/app/operator/products", "Products"),
        ("/app/operator/ledger", "Ledger"),
    ],
    "compliance": [("/app/compliance", "Loans"), ("/app/compliance/register", "Register of agreements")],
    "investor": [("/app/investor", "Dashboard")],
    "borrower": [("/app/borrower", "My loans"), ("/app/borrower/calculator", "Calculator")],
}


def money(value: Any) -> str:
    """1234567.8 -> "1 234 567.80" (a narrow no-break space between thousands)."""
    if value is None or value == "":
        return "—"
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    return f"{amount:,.2f}".replace(",", "\u202f")


def plus(value: Any, *others: Any) -> Decimal:
    """Money added exactly (the API's decimal strings; never floats)."""
    return sum((Decimal(str(v)) for v in (value, *others) if v not in (None, "")), Decimal("0.00"))


def minus(value: Any, other: Any) -> Decimal:
    return Decimal(str(value)) - Decimal(str(other))


def when(value: Any) -> str:
    if not value:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            try:
                value = date.fromisoformat(value)
            except ValueError:
                return value
    if isinstance(value, datetime):
        # (a naive time is the platform's UTC; an aware one is converted, whatever the server's zone)
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()


templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.filters["money"] = money
templates.env.filters["when"] = when
templates.env.filters["plus"] = plus
templates.env.filters["minus"] = minus
templates.env.globals["CSRF_FIELD"] = CSRF_FIELD


def render(
    request: Request,
    template: str,
    session: WebSession | None,
    status_code: int = 200,
    csrf_token: str | None = None,
    **context: Any,
) -> HTMLResponse:
    notice = NOTICES.get(request.query_params.get("notice", ""))
    response = templates.TemplateResponse(
        request,
        template,
        {
            "session": session,
            "user": session.user if session else None,
            "csrf_token": csrf_token or (session.csrf_token if session else ""),
            "navigation": NAVIGATION.get(session.role, []) if session else [],
            "current_path": request.url.path,
            "notice": notice,
            **context,
        },
        status_code=status_code,
    )
    for name, value in SECURITY_HEADERS:
        response.headers[name.decode()] = value.decode()
    response.headers["cache-control"] = "no-store"
    return response
