"""The borrower's pages: their loans (status, next payment, schedule), the wallet with its
deposit form, early repayment, the calculator with its table and chart, saved simulations
and applying for a loan from one, and their documents."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from web.charts import bar_chart, line_chart
from web.forms import FormState, amount_text, posted_key, read_form, refused, see_other, unshown, whole_number
from web.guards import BorrowerSession, web_router
from web.platform_api import ApiProblem, PlatformApi
from web.rendering import money, render
from web.session import WebSession

router = web_router("/app/borrower")

GRADES = ("A", "B", "C", "D", "E")
# Loans whose schedule exists (it is written when the loan is disbursed).
WITH_SCHEDULE = ("active", "repaid", "defaulted")


def next_payment(schedule: list[dict[str, Any]]) -> dict[str, Any] | None:
    for row in schedule:
        if row["status"] in ("pending", "overdue"):
            return row
    return None


def principal_left(schedule: list[dict[str, Any]]) -> Decimal:
    """What an early repayment pays back as principal (interest to today and fees come on top)."""
    return sum(
        (Decimal(row["principal"]) - Decimal(row["paid_principal"]) for row in schedule if row["status"] != "paid"),
        Decimal("0.00"),
    )


def schedule_charts(chart_id: str, rows: list[dict[str, Any]]) -> tuple[str, str]:
    labels = [str(row["payment_num"]) for row in rows]
    payments = bar_chart(
        f"{chart_id}-payments",
        "Each payment: principal and interest",
        labels,
        [
            ("principal", [Decimal(row["principal"]) for row in rows]),
            ("interest", [Decimal(row["interest"]) for row in rows]),
        ],
        unit="RUB",
    )
    balance = line_chart(
        f"{chart_id}-balance",
        "Outstanding balance after each payment",
        labels,
        [Decimal(row["balance_after"]) for row in rows],
        unit="RUB",
    )
    return payments, balance


async def _profile(api: PlatformApi) -> dict[str, Any] | None:
    try:
        return dict(await api.get("/v1/users/me/profile"))
    except ApiProblem as problem:
        if problem.status == 404:
            return None
        raise


PROFILE_FIELDS = ("monthly_income", "monthly_obligations", "employment_months")


async def _home(
    request: Request,
    session: WebSession,
    deposit: FormState | None = None,
    profile_form: FormState | None = None,
    early: tuple[str, FormState] | None = None,
    status: int = 200,
) -> Response:
    api = PlatformApi(request, session.user)
    wallet, loans, documents, profile = await asyncio.gather(
        api.get("/v1/wallets/me"), api.get("/v1/loans", limit=100), api.get("/v1/users/me/documents"), _profile(api)
    )
    schedules = await asyncio.gather(
        *(api.get(f"/v1/loans/{loan['id']}/schedule") for loan in loans if loan["status"] in WITH_SCHEDULE)
    )
    by_loan = dict(zip([loan["id"] for loan in loans if loan["status"] in WITH_SCHEDULE], schedules))
    early_forms = {loan["id"]: FormState() for loan in loans if loan["status"] == "active"}
    page_error = None
    if early is not None:
        page_error = unshown({early[0]: early[1]}, set(early_forms))
        early_forms[early[0]] = early[1]
    rows = [
        {
            "loan": loan,
            "schedule": by_loan.get(loan["id"], []),
            "next": next_payment(by_loan.get(loan["id"], [])),
            "early": early_forms.get(loan["id"]),
            "principal_left": principal_left(by_loan.get(loan["id"], [])),
        }
        for loan in loans
    ]
    return render(
        request,
        "borrower_home.html",
        session,
        status_code=status,
        title="My loans",
        page_error=page_error,
        wallet=wallet,
        loans=rows,
        documents=documents,
        deposit=deposit or FormState(),
        profile=profile,
        profile_form=profile_form
        or FormState(values={name: str(profile[name]) for name in PROFILE_FIELDS} if profile else {}),
    )


@router.get("", response_class=HTMLResponse)
async def borrower_home(request: Request, session: BorrowerSession) -> Response:
    return await _home(request, session)


@router.post("/deposits")
async def announce_deposit(request: Request, session: BorrowerSession) -> Response:
    return await post_deposit(request, session, "/app/borrower", _home)


async def post_deposit(request: Request, session: WebSession, home: str, page: Any) -> Response:
    """Shared by the borrower's and the investor's wallet: announce a bank payment."""
    values = await read_form(request)
    key = posted_key(values)
    body: dict[str, Any] = {"amount": amount_text(values.get("amount", ""))}
    if values.get("bank_reference"):
        body["bank_reference"] = values["bank_reference"]
    try:
        await PlatformApi(request, session.user).post("/v1/wallets/deposits", body, idempotency_key=key)
    except ApiProblem as problem:
        if problem.status in (401, 403, 404):
            raise
        return await page(
            request, session, deposit=refused(problem, values, key, ("amount", "bank_reference")), status=problem.status
        )
    return see_other(home, "deposit-announced")


@router.post("/profile")
async def save_profile(request: Request, session: BorrowerSession) -> Response:
    """What scoring reads: needed before the first loan request."""
    values = await read_form(request)
    body = {
        "monthly_income": amount_text(values.get("monthly_income", "")),
        "monthly_obligations": amount_text(values.get("monthly_obligations", "")),
        "employment_months": whole_number(values.get("employment_months", "")),
    }
    try:
        await PlatformApi(request, session.user).put("/v1/users/me/profile", body)
    except ApiProblem as problem:
        if problem.status in (401, 403):
            raise
        return await _home(
            request, session, profile_form=refused(problem, values, "", PROFILE_FIELDS), status=problem.status
        )
    return see_other("/app/borrower", "profile-saved")


@router.post("/loans/{loan_id}/early-repayment")
async def repay_early(loan_id: uuid.UUID, request: Request, session: BorrowerSession) -> Response:
    """Repays the whole loan today; the same form sent again repays once."""
    values = await read_form(request)
    key = posted_key(values)
    try:
        await PlatformApi(request, session.user).post(f"/v1/loans/{loan_id}/early-repayment", None, idempotency_key=key)
    except ApiProblem as problem:
        if problem.status in (401, 403, 404):
            raise
        state = refused(problem, values, key, ())
        return await _home(request, session, early=(str(loan_id), state), status=problem.status)
    return see_other("/app/borrower", "repaid-early")


@router.get("/loans/{loan_id}", response_class=HTMLResponse)
async def loan_page(loan_id: uuid.UUID, request: Request, session: BorrowerSession) -> Response:
    api = PlatformApi(request, session.user)
    loan = await api.get(f"/v1/loans/{loan_id}")
    schedule = await api.get(f"/v1/loans/{loan_id}/schedule") if loan["status"] in WITH_SCHEDULE else []
    documents = await api.get(f"/v1/loans/{loan_id}/documents")
    return render(
        request,
        "borrower_loan.html",
        session,
        title=f"Loan of {money(loan['amount'])} {loan['currency']}",
        loan=loan,
        schedule=schedule,
        next=next_payment(schedule),
        documents=documents,
    )


# The calculator. Calculating is a GET (nothing is written, the page can be bookmarked);
# saving a simulation and applying are POSTs.


async def _products(api: PlatformApi) -> list[dict[str, Any]]:
    """The products these pages price and ask loans of: loans to the wallet. (Award credits
    name an asset and a seller, and programmed purchases are plans: README "Financing
    modalities", through the API.)"""
    return [p for p in await api.get("/v1/products") if p.get("modality", "loan") == "loan"]


def calculator_options(products: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "product_options": [(p["code"], f"{p['name']} ({p['code']})") for p in products],
        "grade_options": [("", "not scored yet (the highest rate)"), *[(g, g) for g in GRADES]],
    }


@router.get("/calculator", response_class=HTMLResponse)
async def calculator(request: Request, session: BorrowerSession) -> Response:
    api = PlatformApi(request, session.user)
    products = await _products(api)
    values = {
        k: v.strip() for k, v in request.query_params.items() if k in ("product", "amount", "term_months", "grade")
    }
    if not values.get("product") and any(p["code"] == "standard" for p in products):
        values["product"] = "standard"
    form = FormState(values=values)
    result = None
    status = 200
    if values.get("amount") or values.get("term_months"):
        product = next((p for p in products if p["code"] == values.get("product")), None)
        if product is None:
            form.errors["product"] = "choose a product"
        grade = values.get("grade") or ""
        if grade and grade not in GRADES:
            form.errors["grade"] = "choose a grade"
        if not form.errors and product is not None:
            rates = product["rates_by_grade"]
            rate = rates[grade] if grade else max(rates.values(), key=Decimal)
            try:
                result = await api.post(
                    "/v1/calculator",
                    {
                        "amount": amount_text(values.get("amount", "")),
                        "rate_annual": rate,
                        "term_months": whole_number(values.get("term_months", "")),
                        "method": product["amortization_method"],
                        "interest_only_months": product["interest_only_months"],
                        "paying_months": product.get("paying_months"),
                        "grace_months": product.get("grace_months", 0),
                        "product": product["code"],
                    },
                )
            except ApiProblem as problem:
                if problem.status in (401, 403):
                    raise
                form = refused(problem, values, form.key, ("amount", "term_months"))
                status = problem.status
    charts = schedule_charts("calculator", result["schedule"]) if result else None
    return render(
        request,
        "borrower_calculator.html",
        session,
        status_code=status,
        title="Financing calculator",
        **calculator_options(products),
        form=form,
        result=result,
        charts=charts,
    )


@router.post("/simulations")
async def save_simulation(request: Request, session: BorrowerSession) -> Response:
    values = await read_form(request)
    body: dict[str, Any] = {
        "product": values.get("product", ""),
        "amount": amount_text(values.get("amount", "")),
        "term_months": whole_number(values.get("term_months", "")),
    }
    if values.get("grade"):
        body["risk_grade"] = values["grade"]
    try:
        simulation = await PlatformApi(request, session.user).post("/v1/simulations", body)
    except ApiProblem as problem:
        if problem.status in (401, 403):
            raise
        api = PlatformApi(request, session.user)
        return render(
            request,
            "borrower_calculator.html",
            session,
            status_code=problem.status,
            title="Financing calculator",
            **calculator_options(await _products(api)),
            form=refused(problem, values, "", ("amount", "term_months", "product")),
            result=None,
            charts=None,
        )
    return see_other(f"/app/borrower/simulations/{simulation['id']}", "simulation-saved")


async def _simulation_page(
    request: Request, session: WebSession, simulation_id: uuid.UUID, apply: FormState, status: int = 200
) -> Response:
    simulation = await PlatformApi(request, session.user).get(f"/v1/simulations/{simulation_id}")
    return render(
        request,
        "borrower_simulation.html",
        session,
        status_code=status,
        title="Saved simulation",
        simulation=simulation,
        result=simulation["result"],
        charts=schedule_charts("simulation", simulation["result"]["schedule"]),
        apply=apply,
    )


@router.get("/simulations/{simulation_id}", response_class=HTMLResponse)
async def simulation_page(simulation_id: uuid.UUID, request: Request, session: BorrowerSession) -> Response:
    return await _simulation_page(request, session, simulation_id, FormState())


@router.post("/simulations/{simulation_id}/apply")
async def apply_from_simulation(simulation_id: uuid.UUID, request: Request, session: BorrowerSession) -> Response:
    """Asks for the loan the simulation priced: one loan however often the form is sent."""
    values = await read_form(request)
    key = posted_key(values)
    api = PlatformApi(request, session.user)
    simulation = await api.get(f"/v1/simulations/{simulation_id}")
    try:
        await api.post(
            "/v1/loans",
            {
                "product": simulation["product"],
                "simulation_id": str(simulation_id),
                "purpose": values.get("purpose", ""),
            },
            idempotency_key=key,
        )
    except ApiProblem as problem:
        if problem.status in (401, 403, 404):
            raise
        return await _simulation_page(
            request, session, simulation_id, refused(problem, values, key, ("purpose",)), problem.status
        )
    return see_other("/app/borrower", "loan-requested")
