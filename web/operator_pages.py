"""The operators' pages: payments to confirm or reject, loans awaiting review, products
(versions and their diffs), loans by filter with each loan's lifecycle, schedule,
investors, late fees and reserve cover, and the ledger (trial balance, reserve fund)."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from models.loan_status import LoanStatus
from products.diff import TermChange, diff_terms
from web.charts import lifecycle_diagram
from web.forms import FormState, amount_text, posted_key, read_form, refused, see_other, unshown
from web.guards import OperatorSession, web_router
from web.platform_api import ApiProblem, PlatformApi
from web.rendering import render
from web.session import WebSession

router = web_router("/app/operator")

GRADES = ("A", "B", "C", "D", "E")
MAIN_PATH = [
    LoanStatus.pending,
    LoanStatus.scoring,
    LoanStatus.approved,
    LoanStatus.funding,
    LoanStatus.funded,
    LoanStatus.active,
]


@router.get("", response_class=HTMLResponse)
async def operator_home(request: Request, session: OperatorSession) -> Response:
    api = PlatformApi(request, session.user)
    deposits, withdrawals, reviews, balance = await asyncio.gather(
        api.get("/v1/operator/deposits", status="pending", limit=200),
        api.get("/v1/operator/withdrawals", status="pending", limit=200),
        api.get("/v1/operator/reviews", limit=200),
        api.get("/v1/operator/ledger/trial-balance"),
    )
    return render(
        request,
        "operator_home.html",
        session,
        title="Operator home",
        deposits=len(deposits),
        withdrawals=len(withdrawals),
        reviews=len(reviews),
        balance=balance,
    )


# Payments


async def _payments(
    request: Request, session: WebSession, forms: dict[str, FormState] | None = None, status: int = 200
) -> Response:
    api = PlatformApi(request, session.user)
    deposits, withdrawals = await asyncio.gather(
        api.get("/v1/operator/deposits", status="pending", limit=200),
        api.get("/v1/operator/withdrawals", status="pending", limit=200),
    )
    forms = forms or {}
    shown = {f"{action}-{item['id']}" for item in (*deposits, *withdrawals) for action in ("confirm", "reject")}
    page_error = unshown(forms, shown)
    for name in shown:
        forms.setdefault(name, FormState())
    return render(
        request,
        "operator_payments.html",
        session,
        status_code=status,
        title="Payments",
        page_error=page_error,
        deposits=deposits,
        withdrawals=withdrawals,
        forms=forms,
    )


@router.get("/payments", response_class=HTMLResponse)
async def payments(request: Request, session: OperatorSession) -> Response:
    return await _payments(request, session)


PAYMENT_ACTIONS = {
    # (kind, action) -> (API path suffix, body fields, notice)
    ("deposits", "confirm"): ("confirm", ("bank_reference",), "deposit-confirmed"),
    ("deposits", "reject"): ("reject", ("reason",), "deposit-rejected"),
    ("withdrawals", "pay"): ("pay", ("bank_reference",), "withdrawal-paid"),
    ("withdrawals", "reject"): ("reject", ("reason",), "withdrawal-rejected"),
}


@router.post("/{kind}/{payment_id}/{action}")
async def decide_payment(
    kind: str, payment_id: uuid.UUID, action: str, request: Request, session: OperatorSession
) -> Response:
    """Confirm or reject a deposit, pay out or reject a withdrawal: once, however often sent."""
    if (kind, action) not in PAYMENT_ACTIONS:
        return render(request, "error.html", session, status_code=404, title="Not found", detail="No such action.")
    suffix, fields, notice = PAYMENT_ACTIONS[(kind, action)]
    values = await read_form(request)
    key = posted_key(values)
    # a reason is always sent (the API says when it is missing or too short); a reference when typed
    body = {name: values.get(name, "") for name in fields if name == "reason" or values.get(name)}
    try:
        await PlatformApi(request, session.user).post(
            f"/v1/operator/{kind}/{payment_id}/{suffix}", body or None, idempotency_key=key
        )
    except ApiProblem as problem:
        if problem.status in (401, 403):
            raise
        form_name = f"{'confirm' if action in ('confirm', 'pay') else 'reject'}-{payment_id}"
        state = refused(problem, values, key, fields)
        return await _payments(request, session, {form_name: state}, problem.status)
    return see_other("/app/operator/payments", notice)


# Reviews


async def _reviews(
    request: Request, session: WebSession, forms: dict[str, FormState] | None = None, status: int = 200
) -> Response:
    reviews = await PlatformApi(request, session.user).get("/v1/operator/reviews", limit=200)
    forms = forms or {}
    page_error = unshown(forms, {review["loan"]["id"] for review in reviews})
    for review in reviews:
        forms.setdefault(review["loan"]["id"], FormState())
    return render(
        request,
        "operator_reviews.html",
        session,
        status_code=status,
        title="Reviews",
        reviews=reviews,
        forms=forms,
        page_error=page_error,
    )


@router.get("/reviews", response_class=HTMLResponse)
async def reviews(request: Request, session: OperatorSession) -> Response:
    return await _reviews(request, session)


@router.post("/reviews/{loan_id}")
async def decide_review(loan_id: uuid.UUID, request: Request, session: OperatorSession) -> Response:
    """Approve or reject (the API requires the reason of a rejection); decided once."""
    values = await read_form(request)
    key = posted_key(values)
    approve = {"approve": True, "reject": False}.get(values.get("decision", ""))
    try:
        answer = await PlatformApi(request, session.user).post(
            f"/v1/operator/loans/{loan_id}/decision",
            {"approve": approve, "reason": values.get("reason", "")},
            idempotency_key=key,
        )
    except ApiProblem as problem:
        if problem.status in (401, 403, 404):
            raise
        state = refused(problem, values, key, ("decision", "reason"), {"approve": "decision"})
        if "decision" in state.errors:
            state.errors["decision"] = "choose approve or reject"
        return await _reviews(request, session, {str(loan_id): state}, problem.status)
    # A loan is decided once: a second decision is answered with the first one's outcome.
    decided = answer["status"]
    if (decided == "rejected") == bool(approve):
        said = FormState(values, message=f"the loan was already decided: it is {decided}")
        return await _reviews(request, session, {str(loan_id): said}, 409)
    return see_other("/app/operator/reviews", "loan-approved" if approve else "loan-rejected")


# Products

PRODUCT_FIELDS = (
    "code",
    "name",
    "currency",
    "min_amount",
    "max_amount",
    "min_term_months",
    "max_term_months",
    "amortization_method",
    "interest_only_months",
    "platform_fee_percent",
    "reserve_fund_percent",
    "funding_window_days",
    "funding_window_minutes",
    "min_investment",
    "max_investor_share_percent",
    "late_fee_grace_days",
    "late_fee_percent_per_day",
    "default_after_days_overdue",
    "max_debt_to_income_percent",
    "market_min_price_percent",
    "market_max_price_percent",
    "market_fee_percent",
    "market_min_holding_days",
    "modality",
    "paying_months",
    "grace_months",
    "min_down_payment_percent",
    "asset_kinds",
    "award_rule",
    "award_share_percent",
    "cancellation_refund_percent",
    "award_credit_product",
)
DECIMAL_FIELDS = {
    "min_amount",
    "max_amount",
    "platform_fee_percent",
    "reserve_fund_percent",
    "min_investment",
    "max_investor_share_percent",
    "late_fee_percent_per_day",
    "max_debt_to_income_percent",
    "market_min_price_percent",
    "market_max_price_percent",
    "market_fee_percent",
    "min_down_payment_percent",
    "award_share_percent",
    "cancellation_refund_percent",
}
OPTIONAL_FIELDS = {
    "funding_window_minutes",
    "award_rule",
    "award_share_percent",
    "cancellation_refund_percent",
    "award_credit_product",
}
# Lists, written comma-separated in the form: the paying months (numbers), the asset kinds.
LIST_FIELDS = {"paying_months": int, "asset_kinds": str}
DEFAULTS = {"modality": "loan", "grace_months": "0", "min_down_payment_percent": "0"}


def product_form(product: dict[str, Any] | None) -> FormState:
    if product is None:
        return FormState(values={"currency": "RUB", "amortization_method": "annuity", **DEFAULTS})
    values = {name: "" if product.get(name) is None else str(product[name]) for name in PRODUCT_FIELDS}
    for name in LIST_FIELDS:
        values[name] = ", ".join(str(item) for item in product.get(name) or [])
    for grade in GRADES:
        values[f"rate_{grade}"] = str(product["rates_by_grade"][grade])
    values["requires_manual_approval"] = "on" if product.get("requires_manual_approval") else ""
    return FormState(values=values)


def product_body(values: dict[str, str]) -> dict[str, Any]:
    """The form as ProductTerms' JSON; the API validates every field."""
    body: dict[str, Any] = {}
    for name in PRODUCT_FIELDS:
        raw = values.get(name, "").strip() or DEFAULTS.get(name, "")
        if name in LIST_FIELDS:
            items = [item.strip() for item in raw.split(",") if item.strip()]
            convert = LIST_FIELDS[name]
            # (a number that is not one goes to the API as written: it names the field)
            body[name] = [convert(item) if convert is str or item.isdigit() else item for item in items] or None
        elif name in OPTIONAL_FIELDS and raw == "":
            body[name] = None
        elif name in DECIMAL_FIELDS:
            body[name] = amount_text(raw)
        else:
            body[name] = raw
    body["rates_by_grade"] = {grade: amount_text(values.get(f"rate_{grade}", "")) for grade in GRADES}
    body["requires_manual_approval"] = values.get("requires_manual_approval") == "on"
    return body


def _product_errors(problem: ApiProblem, values: dict[str, str]) -> FormState:
    rates = {f"rates_by_grade.{grade}": f"rate_{grade}" for grade in GRADES}
    return refused(problem, values, "", (*PRODUCT_FIELDS, *rates.values()), rates)


@router.get("/products", response_class=HTMLResponse)
async def products(request: Request, session: OperatorSession) -> Response:
    current = await PlatformApi(request, session.user).get("/v1/products")
    return render(request, "operator_products.html", session, title="Products", products=current)


def _version_changes(versions: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[TermChange]]]:
    """Each version with what changed against the one before it (newest first)."""
    ordered = sorted(versions, key=lambda v: v["version"])
    pairs = [(v, diff_terms(ordered[i - 1], v) if i else []) for i, v in enumerate(ordered)]
    return list(reversed(pairs))


async def _product_page(
    request: Request, session: WebSession, code: str, form: FormState | None = None, status: int = 200
) -> Response:
    versions = await PlatformApi(request, session.user).get(f"/v1/operator/products/{quote(code, safe='')}/versions")
    current = max(versions, key=lambda v: v["version"])
    return render(
        request,
        "operator_product.html",
        session,
        status_code=status,
        title=f"Product {code}",
        code=code,
        current=current,
        versions=_version_changes(versions),
        form=form or product_form(current),
        grades=GRADES,
        new=False,
    )


@router.get("/products/new", response_class=HTMLResponse)
async def new_product_form(request: Request, session: OperatorSession) -> Response:
    return render(
        request, "operator_product.html", session, title="New product", form=product_form(None), grades=GRADES, new=True
    )


@router.post("/products/new")
async def create_product(request: Request, session: OperatorSession) -> Response:
    values = await read_form(request)
    try:
        created = await PlatformApi(request, session.user).post("/v1/operator/products", product_body(values))
    except ApiProblem as problem:
        if problem.status in (401, 403):
            raise
        return render(
            request,
            "operator_product.html",
            session,
            status_code=problem.status,
            title="New product",
            form=_product_errors(problem, values),
            grades=GRADES,
            new=True,
        )
    return see_other(f"/app/operator/products/{quote(created['code'], safe='')}", "product-created")


@router.get("/products/{code}", response_class=HTMLResponse)
async def product_page(code: str, request: Request, session: OperatorSession) -> Response:
    return await _product_page(request, session, code)


@router.post("/products/{code}")
async def change_product(code: str, request: Request, session: OperatorSession) -> Response:
    """A new version (loans keep theirs); the same terms again write none."""
    values = await read_form(request)
    values["code"] = code
    try:
        response = await PlatformApi(request, session.user).put(
            f"/v1/operator/products/{quote(code, safe='')}", product_body(values)
        )
    except ApiProblem as problem:
        if problem.status in (401, 403, 404):
            raise
        return await _product_page(request, session, code, _product_errors(problem, values), problem.status)
    created = response.headers.get("x-product-version-created") == "true"
    return see_other(
        f"/app/operator/products/{quote(code, safe='')}", "product-changed" if created else "product-unchanged"
    )


# Loans

FILTERS = ("status", "grade", "product", "borrower")
LOANS_SHOWN = 200


@router.get("/loans", response_class=HTMLResponse)
async def loans(request: Request, session: OperatorSession) -> Response:
    values = {name: request.query_params.get(name, "").strip() for name in FILTERS}
    form = FormState(values=values)
    api = PlatformApi(request, session.user)
    found: list[dict[str, Any]] = []
    status = 200
    try:
        found, products = await asyncio.gather(
            api.get("/v1/loans", limit=LOANS_SHOWN, **values), api.get("/v1/products")
        )
    except ApiProblem as problem:
        if problem.status in (401, 403):
            raise
        form = refused(problem, values, "", FILTERS)
        products = await api.get("/v1/products")
        status = problem.status
    return render(
        request,
        "operator_loans.html",
        session,
        status_code=status,
        title="Loans",
        form=form,
        loans=found,
        limit=LOANS_SHOWN,
        status_options=[("", "any status"), *[(s.value, s.value) for s in LoanStatus]],
        grade_options=[("", "any grade"), *[(g, g) for g in GRADES]],
        product_options=[("", "any product"), *[(p["code"], p["code"]) for p in products]],
    )


def visited_statuses(status: str, funded_amount: str) -> set[str]:
    """The states a loan in `status` went through, as far as its status tells."""
    if status in (LoanStatus.repaid, LoanStatus.defaulted):
        return {s.value for s in MAIN_PATH}
    if status == LoanStatus.rejected:
        # rejected at scoring, at review, when the funding window closed, or at disbursement
        reached = [LoanStatus.pending, LoanStatus.scoring]
        try:
            if Decimal(funded_amount) > 0:
                reached += [LoanStatus.approved, LoanStatus.funding]
        except InvalidOperation:
            pass
        return {s.value for s in reached}
    if status in MAIN_PATH:
        return {s.value for s in MAIN_PATH[: MAIN_PATH.index(LoanStatus(status))]}
    return set()


@router.get("/loans/{loan_id}", response_class=HTMLResponse)
async def loan_page(loan_id: uuid.UUID, request: Request, session: OperatorSession) -> Response:
    api = PlatformApi(request, session.user)
    loan, overview, schedule, scoring = await asyncio.gather(
        api.get(f"/v1/loans/{loan_id}"),
        api.get(f"/v1/operator/loans/{loan_id}/overview"),
        api.get(f"/v1/loans/{loan_id}/schedule"),
        api.get(f"/v1/loans/{loan_id}/scoring"),
    )
    diagram = lifecycle_diagram("lifecycle", loan["status"], visited_statuses(loan["status"], loan["funded_amount"]))
    return render(
        request,
        "operator_loan.html",
        session,
        title=f"Loan {str(loan_id)[:8]}",
        loan=loan,
        overview=overview,
        schedule=schedule,
        scoring=scoring,
        diagram=diagram,
    )


# Ledger


@router.get("/ledger", response_class=HTMLResponse)
async def ledger(request: Request, session: OperatorSession) -> Response:
    api = PlatformApi(request, session.user)
    balance, reserve = await asyncio.gather(
        api.get("/v1/operator/ledger/trial-balance"), api.get("/v1/operator/ledger/reserve-fund")
    )
    return render(request, "operator_ledger.html", session, title="Ledger", balance=balance, reserve=reserve)
