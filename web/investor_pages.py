"""The investor's dashboard: wallet (deposit, withdraw), portfolio by status and grade,
expected cash flow by month, realised return and losses, the 259-FZ limit, the auto-invest
rule, loans open for funding with an invest form, the secondary market (sell a holding,
one's own listings with a cancel button, others' listings with a buy form), and their
documents."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from web.borrower_pages import post_deposit
from web.charts import bar_chart
from web.forms import FormState, amount_text, posted_key, read_form, refused, see_other, unshown, whole_number
from web.guards import InvestorSession, web_router
from web.platform_api import ApiProblem, PlatformApi
from web.rendering import render
from web.session import WebSession

router = web_router("/app/investor")

GRADES = ("A", "B", "C", "D", "E")
MARKET_LIMIT = 200  # the open listings shown (the API's page size at most)
MY_MARKET_LIMIT = 100  # one's own closed listings and trades shown, newest first
SELL_FIELDS = ("principal", "price_percent")
RULE_DEFAULTS = {
    "max_amount_per_loan": "5000.00",
    "min_loan_amount": "10000.00",
    "max_loan_amount": "1000000.00",
    "min_rate": "10.0000",
    "max_term_months": "36",
}


async def _rule(api: PlatformApi) -> dict[str, Any] | None:
    try:
        return dict(await api.get("/v1/auto-invest/rule"))
    except ApiProblem as problem:
        if problem.status == 404:
            return None
        raise


async def _my_open_listings(api: PlatformApi) -> list[dict[str, Any]]:
    """All of one's open listings (at most one per holding), page by page."""
    found: list[dict[str, Any]] = []
    while True:
        page = await api.get("/v1/market/listings/mine", status="open", limit=200, offset=len(found))
        found += page
        if len(page) < 200:
            return found


def _market(
    holdings: list[dict[str, Any]],
    listings: list[dict[str, Any]],
    mine: list[dict[str, Any]],
    trades: list[dict[str, Any]],
) -> dict[str, Any]:
    """The secondary market's part of the dashboard: the holdings that may be offered (in an
    active loan, with principal still owed: the API decides the rest and says why not), one's
    own listings (all the open ones, priced today while for sale, then the newest closed ones
    with why they closed), the others' with a buy form, and one's trades on both sides."""
    sellable = [h for h in holdings if h["loan_status"] == "active" and Decimal(h["outstanding_principal"]) > 0]
    offered = [listing for listing in listings if not listing["mine"]]
    return {
        "sellable": sellable,
        "sell_forms": {
            h["investment_id"]: FormState(values={"principal": h["outstanding_principal"]}) for h in sellable
        },
        "listed": {listing["investment_id"]: listing for listing in mine if listing["status"] == "open"},
        "my_listings": mine,
        "offered": offered,
        "buy_forms": {listing["id"]: FormState() for listing in offered},
        "trades": trades,
    }


def _terms_beside_fields(problem: ApiProblem, fields: tuple[str, ...]) -> ApiProblem:
    """The market's own 422 (terms the product does not allow) names no field: its reason is
    about the price ("the price must be ...") or else the principal; put it beside that one."""
    if (
        problem.status == 422
        and not problem.field_errors
        and str(problem.body.get("type", "")).endswith("/invalid-request")
    ):
        name = "price_percent" if problem.detail.startswith("the price") and "price_percent" in fields else "principal"
        problem.field_errors = {name: problem.detail}
    return problem


def _rule_form(rule: dict[str, Any] | None) -> FormState:
    if rule is None:
        return FormState(values={**RULE_DEFAULTS, "grades": "A B C", "max_market_premium_percent": "0.00"})
    values = {name: str(rule[name]) for name in RULE_DEFAULTS}
    values["grades"] = " ".join(rule["allowed_grades"])
    values["is_active"] = "on" if rule["is_active"] else ""
    values["reinvest_returns"] = "on" if rule["reinvest_returns"] else ""
    values["max_portfolio_share_percent"] = str(rule.get("max_portfolio_share_percent") or "")
    values["buy_on_market"] = "on" if rule.get("buy_on_market") else ""
    values["max_market_premium_percent"] = str(rule.get("max_market_premium_percent") or "0.00")
    return FormState(values=values)


async def _dashboard(
    request: Request,
    session: WebSession,
    *,
    deposit: FormState | None = None,
    withdrawal: FormState | None = None,
    rule_form: FormState | None = None,
    invest: tuple[str, FormState] | None = None,
    sell: tuple[str, FormState] | None = None,
    buy: tuple[str, FormState] | None = None,
    market_error: str | None = None,
    status: int = 200,
) -> Response:
    api = PlatformApi(request, session.user)
    wallet, portfolio, limit, rule, open_loans, listings, my_open, my_recent, trades, documents = await asyncio.gather(
        api.get("/v1/wallets/me"),
        api.get("/v1/investors/me/portfolio"),
        api.get("/v1/investors/me/annual-limit"),
        _rule(api),
        api.get("/v1/loans", status="funding", limit=50),
        api.get("/v1/market/listings", limit=MARKET_LIMIT),
        # (separately: one's own open listings may be anywhere in the market's order)
        _my_open_listings(api),
        api.get("/v1/market/listings/mine", status=["sold", "cancelled", "closed"], limit=MY_MARKET_LIMIT),
        api.get("/v1/market/trades", limit=MY_MARKET_LIMIT),
        api.get("/v1/users/me/documents"),
    )
    flow = portfolio["expected_cash_flow"]
    cash_flow_chart = bar_chart(
        "cash-flow",
        "Expected cash flow by month",
        [row["month"] for row in flow],
        [
            ("principal", [Decimal(row["principal"]) for row in flow]),
            ("interest", [Decimal(row["interest"]) for row in flow]),
        ],
        unit="RUB",
    )
    invest_forms = {loan["id"]: FormState() for loan in open_loans}
    page_error = market_error
    if invest is not None:
        page_error = unshown({invest[0]: invest[1]}, set(invest_forms))
        invest_forms[invest[0]] = invest[1]
    mine = my_open + my_recent
    market = _market(portfolio["holdings"], listings, mine, trades)
    for forms, posted in ((market["sell_forms"], sell), (market["buy_forms"], buy)):
        if posted is not None:
            page_error = page_error or unshown({posted[0]: posted[1]}, set(forms))
            forms[posted[0]] = posted[1]
    return render(
        request,
        "investor_home.html",
        session,
        status_code=status,
        title="Investor dashboard",
        page_error=page_error,
        wallet=wallet,
        portfolio=portfolio,
        cash_flow_chart=cash_flow_chart,
        limit=limit,
        rule=rule,
        rule_form=rule_form or _rule_form(rule),
        grades=GRADES,
        open_loans=open_loans,
        invest_forms=invest_forms,
        documents=documents,
        **market,
        deposit=deposit or FormState(),
        withdrawal=withdrawal or FormState(),
    )


@router.get("", response_class=HTMLResponse)
async def investor_home(request: Request, session: InvestorSession) -> Response:
    return await _dashboard(request, session)


async def _home_with_deposit(request: Request, session: WebSession, deposit: FormState, status: int) -> Response:
    return await _dashboard(request, session, deposit=deposit, status=status)


@router.post("/deposits")
async def announce_deposit(request: Request, session: InvestorSession) -> Response:
    return await post_deposit(request, session, "/app/investor", _home_with_deposit)


@router.post("/withdrawals")
async def request_withdrawal(request: Request, session: InvestorSession) -> Response:
    values = await read_form(request)
    key = posted_key(values)
    try:
        await PlatformApi(request, session.user).post(
            "/v1/wallets/withdrawals", {"amount": amount_text(values.get("amount", ""))}, idempotency_key=key
        )
    except ApiProblem as problem:
        if problem.status in (401, 403, 404):
            raise
        return await _dashboard(
            request, session, withdrawal=refused(problem, values, key, ("amount",)), status=problem.status
        )
    return see_other("/app/investor", "withdrawal-requested")


@router.post("/loans/{loan_id}/investments")
async def invest(loan_id: uuid.UUID, request: Request, session: InvestorSession) -> Response:
    """The same form sent twice invests once (its Idempotency-Key)."""
    values = await read_form(request)
    key = posted_key(values)
    try:
        await PlatformApi(request, session.user).post(
            f"/v1/loans/{loan_id}/investments", {"amount": amount_text(values.get("amount", ""))}, idempotency_key=key
        )
    except ApiProblem as problem:
        if problem.status in (401, 403):
            raise
        if problem.status == 404:  # it left funding meanwhile: an investor no longer sees it
            problem.detail = "the loan is no longer open for investment"
        return await _dashboard(
            request, session, invest=(str(loan_id), refused(problem, values, key, ("amount",))), status=problem.status
        )
    return see_other("/app/investor", "invested")


@router.post("/auto-invest")
async def save_rule(request: Request, session: InvestorSession) -> Response:
    form = await request.form()
    values = await read_form(request)
    grades = [g for g in form.getlist("grades") if isinstance(g, str) and g in GRADES]
    values["grades"] = " ".join(grades)
    body: dict[str, Any] = {
        "is_active": values.get("is_active") == "on",
        "reinvest_returns": values.get("reinvest_returns") == "on",
        "allowed_grades": grades,
        "max_amount_per_loan": amount_text(values.get("max_amount_per_loan", "")),
        "min_loan_amount": amount_text(values.get("min_loan_amount", "")),
        "max_loan_amount": amount_text(values.get("max_loan_amount", "")),
        "min_rate": amount_text(values.get("min_rate", "")),
        "max_term_months": whole_number(values.get("max_term_months", "")),
        "max_portfolio_share_percent": amount_text(values.get("max_portfolio_share_percent", "")) or None,
        "buy_on_market": values.get("buy_on_market") == "on",
        "max_market_premium_percent": _percent_text(values.get("max_market_premium_percent", "")) or "0",
    }
    try:
        await PlatformApi(request, session.user).put("/v1/auto-invest/rule", body)
    except ApiProblem as problem:
        if problem.status in (401, 403):
            raise
        state = refused(
            problem,
            values,
            "",
            (*RULE_DEFAULTS, "allowed_grades", "max_portfolio_share_percent", "max_market_premium_percent"),
        )
        if "allowed_grades" in state.errors:
            state.errors["grades"] = state.errors.pop("allowed_grades")
        return await _dashboard(request, session, rule_form=state, status=problem.status)
    return see_other("/app/investor", "rule-saved")


def _percent_text(raw: str) -> str:
    """A typed price ("98,5 %") as the API's decimal string."""
    return amount_text(raw.replace("%", ""))


@router.post("/market/listings")
async def list_holding(request: Request, session: InvestorSession) -> Response:
    """Offers all or part of a holding on the secondary market. The same form sent twice lists
    once (its Idempotency-Key)."""
    values = await read_form(request)
    key = posted_key(values)
    investment_id = values.get("investment_id", "")
    body = {
        "investment_id": investment_id,
        "principal": amount_text(values.get("principal", "")),
        "price_percent": _percent_text(values.get("price_percent", "")),
    }
    try:
        await PlatformApi(request, session.user).post("/v1/market/listings", body, idempotency_key=key)
    except ApiProblem as problem:
        if problem.status in (401, 403):
            raise
        if problem.status == 404:  # not (or no longer) one of this investor's holdings
            problem.detail = "this holding is not yours to sell"
        state = refused(_terms_beside_fields(problem, SELL_FIELDS), values, key, SELL_FIELDS)
        return await _dashboard(request, session, sell=(investment_id, state), status=problem.status)
    return see_other("/app/investor", "listed")


@router.post("/market/listings/{listing_id}/cancel")
async def cancel_listing(listing_id: uuid.UUID, request: Request, session: InvestorSession) -> Response:
    """The seller takes the listing off the market; anyone else gets the API's 404."""
    try:
        await PlatformApi(request, session.user).call("DELETE", f"/v1/market/listings/{listing_id}")
    except ApiProblem as problem:
        if problem.status in (401, 403, 404):
            raise
        return await _dashboard(
            request, session, market_error=f"Not cancelled: {problem.detail}", status=problem.status
        )
    return see_other("/app/investor", "listing-cancelled")


@router.post("/market/listings/{listing_id}/purchase")
async def buy_listing(listing_id: uuid.UUID, request: Request, session: InvestorSession) -> Response:
    """Buys all of a listing (the principal left empty) or a part. The same form sent twice
    buys once (its Idempotency-Key: the API gives the same trade)."""
    values = await read_form(request)
    key = posted_key(values)
    principal = amount_text(values.get("principal", ""))
    # All of it at the total the page showed, and not a kopek more (the accrued interest
    # grows by the day: a click after midnight is told the new price instead of paying it).
    shown = amount_text(values.get("max_buyer_pays", ""))
    body = {"principal": principal} if principal else ({"max_buyer_pays": shown} if shown else {})
    try:
        await PlatformApi(request, session.user).post(
            f"/v1/market/listings/{listing_id}/purchase", body, idempotency_key=key
        )
    except ApiProblem as problem:
        if problem.status in (401, 403):
            raise
        if problem.status == 404:  # cancelled and gone, or never there
            problem.detail = "the listing is no longer on the market"
        state = refused(_terms_beside_fields(problem, ("principal",)), values, key, ("principal",))
        return await _dashboard(request, session, buy=(str(listing_id), state), status=problem.status)
    return see_other("/app/investor", "bought")
