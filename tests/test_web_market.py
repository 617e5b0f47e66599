"""The secondary market on the investor's dashboard, over HTTP (no browser): a holding offered
through its form, shown to its seller under "My listings" and to other investors under
"Listings you can buy"; refusals beside their field (422) or above the form (409); cancel,
by the seller only; the same form sent twice lists once; a purchase refused before it
reaches the loan; and, on the Temporal dev server (tests/test_market.py's fixtures), a
purchase through the buy form settled by the loan's workflow, once for its form."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.main import create_app
from core.db import unit_of_work
from models.auto_invest import AutoInvestRuleRow
from models.loans import Investment
from models.market import MarketListing, MarketTrade
from products.service import change_product, current_product, terms_of
from tests.api_helpers import Account, sign_up
from tests.loan_helpers import (
    active_loan_in_db,
    give_money,
    make_borrower,
    make_investor,
    running_worker,
    wait_for_agreements,
)
from tests.test_loan_api import bearer, fund_through_the_api, wait_loan_status
from tests.web_helpers import csrf_of, keys_of, text_of, web_login

D = Decimal


def browser(client: TestClient) -> TestClient:
    """Another browser on the same app: its own cookies."""
    return TestClient(client.app)


def logged_in(client: TestClient, account: Account) -> tuple[TestClient, str]:
    b = browser(client)
    return b, web_login(b, account.email, account.password)


def _tradeable_at_once(session_factory) -> None:
    """The product lets a holding be listed the day it is bought (a test cannot wait 30 days).
    A new version of the product: only loans created after it have its terms."""
    with unit_of_work(session_factory) as session:
        terms = terms_of(current_product(session, "standard"))
        change_product(session, "standard", terms.model_copy(update={"market_min_holding_days": 0}))


@pytest.fixture
def people(client, seeded):
    borrower = sign_up(client, "borrower")
    profile = {"monthly_income": "150000.00", "monthly_obligations": "0.00", "employment_months": 36}
    assert client.put("/v1/users/me/profile", json=profile, headers=borrower.headers).status_code == 200
    return {"seller": sign_up(client, "investor"), "buyer": sign_up(client, "investor"), "borrower": borrower}


def _holding(session_factory, people, *, tradeable: bool = True) -> tuple[uuid.UUID, uuid.UUID]:
    """An active loan of 14,000 (two installments still pending) held wholly by the seller:
    (loan id, the seller's investment id)."""
    if tradeable:
        _tradeable_at_once(session_factory)
    seller = uuid.UUID(people["seller"].id)
    loan_id = active_loan_in_db(session_factory, uuid.UUID(people["borrower"].id), [seller])
    with session_factory() as session:
        investment = session.scalars(select(Investment).where(Investment.loan_id == loan_id)).one()
    return loan_id, investment.id


def _sell_row(page: str, investment_id: uuid.UUID) -> str:
    found = re.search(rf'<tr data-investment="{investment_id}">(.*?)</tr>', page, re.S)
    assert found, "the holding has no sell form"
    return found.group(1)


def _section(page: str, table_id: str) -> str:
    found = re.search(rf'<table id="{table_id}">(.*?)</table>', page, re.S)
    return found.group(1) if found else ""


def _sell(b: TestClient, csrf: str, investment_id: uuid.UUID, key: str, principal: str, price: str):
    return b.post(
        "/app/investor/market/listings",
        data={
            "csrf_token": csrf,
            "idempotency_key": key,
            "investment_id": str(investment_id),
            "principal": principal,
            "price_percent": price,
        },
        follow_redirects=False,
    )


def _key_of_row(row: str) -> str:
    (key,) = keys_of(row)
    return key


def _open_listings(session_factory, investment_id: uuid.UUID) -> list[MarketListing]:
    with session_factory() as session:
        return list(
            session.scalars(
                select(MarketListing).where(
                    MarketListing.investment_id == investment_id, MarketListing.status == "open"
                )
            )
        )


def test_a_holding_listed_through_the_form_is_mine_to_cancel_and_others_to_buy(client, people, session_factory):
    loan_id, investment_id = _holding(session_factory, people)
    seller, csrf = logged_in(client, people["seller"])
    home = seller.get("/app/investor").text
    row = _sell_row(home, investment_id)
    # Labelled fields, all of the holding offered unless changed, a fresh key for the form.
    assert 'for="sell-' in row and "Price (% of the principal)" in row and 'value="14000.00"' in row
    assert "<caption>Holdings you can offer</caption>" in home
    assert "You have listed nothing on the market." in text_of(home)
    assert "No trades yet." in text_of(home)

    answer = _sell(seller, csrf, investment_id, _key_of_row(row), "14000.00", "99,5 %")
    assert answer.status_code == 303 and answer.headers["location"] == "/app/investor?notice=listed"
    page = seller.get(answer.headers["location"]).text
    assert "Listed: your offer is on the secondary market" in page
    mine = _section(page, "my-listings")
    assert (
        "<caption>My listings: the open ones priced today, then the closed ones with why, newest first</caption>"
        in mine
    )
    (listing,) = _open_listings(session_factory, investment_id)
    assert listing.price_percent == D("99.50") and listing.principal == D("14000.00")
    assert f'data-listing="{listing.id}"' in mine and "99.50 %" in mine and "13\u202f930.00" in mine
    assert f"/app/investor/market/listings/{listing.id}/cancel" in mine
    assert str(listing.id) not in _section(page, "offered")  # never offered to its own seller
    assert "14 000.00 at 99.50 %" in text_of(_sell_row(page, investment_id))

    buyer, _ = logged_in(client, people["buyer"])
    market = buyer.get("/app/investor").text
    offered = _section(market, "offered")
    assert "<caption>Listings you can buy, priced today</caption>" in offered
    assert f'data-listing="{listing.id}"' in offered and str(loan_id)[:8] in offered
    for heading in ("Grade", "Rate", "Installments left", "Principal offered", "Price %", "Accrued interest"):
        assert f">{heading}</th>" in offered
    assert "Total to pay" in offered and "Yield" in offered
    assert "13\u202f930.00" in offered and "99.50 %" in offered
    assert f'action="/app/investor/market/listings/{listing.id}/purchase"' in offered
    assert f'<label for="buy-{listing.id}-principal">' in offered
    assert "You have listed nothing on the market." in text_of(market)  # the buyer has no listing of its own
    assert "/cancel" not in market

    # Only the seller may cancel: anyone else gets "no such page" and the listing stays.
    other = buyer.post(f"/app/investor/market/listings/{listing.id}/cancel", data={"csrf_token": csrf_of(market)})
    assert other.status_code == 404
    assert len(_open_listings(session_factory, investment_id)) == 1

    cancelled = seller.post(
        f"/app/investor/market/listings/{listing.id}/cancel", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert cancelled.status_code == 303 and cancelled.headers["location"] == "/app/investor?notice=listing-cancelled"
    after = seller.get(cancelled.headers["location"]).text
    assert "The listing is cancelled" in after and str(listing.id) not in _section(after, "offered")
    # Still among the seller's listings, said cancelled and why, with nothing left to press.
    gone = re.search(rf'<tr data-listing="{listing.id}" data-status="cancelled">(.*?)</tr>', after, re.S)
    assert gone and "cancelled: cancelled by the seller" in text_of(gone.group(1))
    assert "/cancel" not in gone.group(1)
    assert not _open_listings(session_factory, investment_id)
    assert str(listing.id) not in buyer.get("/app/investor").text


def test_a_bad_price_is_shown_beside_the_price_field_with_what_was_typed(client, people, session_factory):
    _, investment_id = _holding(session_factory, people)
    seller, csrf = logged_in(client, people["seller"])
    key = _key_of_row(_sell_row(seller.get("/app/investor").text, investment_id))
    prefix = f"sell-{investment_id}-"
    for price, said in (("150", "between 90.00% and 110.00%"), ("a lot", "valid decimal")):
        answer = _sell(seller, csrf, investment_id, key, "5000.00", price)
        assert answer.status_code == 422, answer.text
        row = _sell_row(answer.text, investment_id)
        error = re.search(rf'<span class="error" id="{prefix}price_percent-error">([^<]+)</span>', row)
        assert error, row
        assert said in error.group(1)
        assert f'id="{prefix}price_percent" name="price_percent" type="text" value="{price}"' in row
        assert 'aria-invalid="true"' in row and f'aria-describedby="{prefix}price_percent-error"' in row
        assert 'value="5000.00"' in row and f"{prefix}principal-error" not in row  # the principal was fine
        assert _key_of_row(row) != key  # refused: a new key for the next try
    assert not _open_listings(session_factory, investment_id)

    # A part the product does not allow is said beside the principal.
    answer = _sell(seller, csrf, investment_id, key, "13500.00", "100")
    assert answer.status_code == 422
    row = _sell_row(answer.text, investment_id)
    assert f'id="{prefix}principal-error"' in row and "leaves at least 1000.00" in row
    assert f"{prefix}price_percent-error" not in row


def test_a_refusal_of_the_holding_is_said_above_its_form(client, people, session_factory):
    _, investment_id = _holding(session_factory, people, tradeable=False)  # held 0 of 30 days
    seller, csrf = logged_in(client, people["seller"])
    key = _key_of_row(_sell_row(seller.get("/app/investor").text, investment_id))
    answer = _sell(seller, csrf, investment_id, key, "14000.00", "100")
    assert answer.status_code == 409
    row = _sell_row(answer.text, investment_id)
    assert re.search(r'<p class="form-error" role="alert">[^<]*held 30 days; this one has been held 0', row), row
    assert 'value="100"' in row and _key_of_row(row) != key
    assert not _open_listings(session_factory, investment_id)


def test_listing_twice_says_why_and_the_same_form_sent_twice_lists_once(client, people, session_factory):
    _, investment_id = _holding(session_factory, people)
    seller, csrf = logged_in(client, people["seller"])
    key = _key_of_row(_sell_row(seller.get("/app/investor").text, investment_id))
    # A double click: the same form (its key) twice, one listing, both answered alike.
    first = _sell(seller, csrf, investment_id, key, "7000.00", "101")
    again = _sell(seller, csrf, investment_id, key, "7000.00", "101")
    assert first.status_code == again.status_code == 303
    assert again.headers["location"] == first.headers["location"]
    assert len(_open_listings(session_factory, investment_id)) == 1

    # A new form for the same holding: the API's reason above the form, what was typed kept.
    page = seller.get("/app/investor").text
    twice = _sell(seller, csrf, investment_id, _key_of_row(_sell_row(page, investment_id)), "3000.00", "95")
    assert twice.status_code == 409
    row = _sell_row(twice.text, investment_id)
    assert re.search(r'<p class="form-error" role="alert">this holding is already listed: cancel that listing', row)
    assert 'value="3000.00"' in row and 'value="95"' in row
    assert len(_open_listings(session_factory, investment_id)) == 1


def test_someone_elses_holding_cannot_be_listed(client, people, session_factory):
    _, investment_id = _holding(session_factory, people)
    buyer, csrf = logged_in(client, people["buyer"])
    answer = _sell(buyer, csrf, investment_id, str(uuid.uuid4()), "14000.00", "100")
    assert answer.status_code == 404
    assert "Not done: this holding is not yours to sell" in text_of(answer.text)
    assert not _open_listings(session_factory, investment_id)


def test_a_purchase_refused_before_it_reaches_the_loan(client, people, session_factory):
    _, investment_id = _holding(session_factory, people)
    seller, csrf = logged_in(client, people["seller"])
    key = _key_of_row(_sell_row(seller.get("/app/investor").text, investment_id))
    assert _sell(seller, csrf, investment_id, key, "14000.00", "100").status_code == 303
    (listing,) = _open_listings(session_factory, investment_id)

    buyer, buyer_csrf = logged_in(client, people["buyer"])
    page = buyer.get("/app/investor").text
    found = re.search(rf'<tr data-listing="{listing.id}">(.*?)</tr>', page, re.S)
    assert found
    buy_key = _key_of_row(found.group(1))
    url = f"/app/investor/market/listings/{listing.id}/purchase"
    prefix = f"buy-{listing.id}-"

    # A part the product does not allow (below its minimum): beside the principal, as typed.
    too_little = buyer.post(url, data={"csrf_token": buyer_csrf, "idempotency_key": buy_key, "principal": "500"})
    assert too_little.status_code == 422
    error = re.search(rf'<span class="error" id="{prefix}principal-error">([^<]+)</span>', too_little.text)
    assert error and error.group(1).startswith("take all of the 14000.00 listed"), too_little.text
    assert f'id="{prefix}principal" name="principal" type="text" value="500"' in too_little.text
    assert f'aria-describedby="{prefix}principal-error"' in too_little.text

    # More than is left (others may have bought meanwhile): the API's 409, above the form.
    too_much = buyer.post(url, data={"csrf_token": buyer_csrf, "idempotency_key": buy_key, "principal": "20000"})
    assert too_much.status_code == 409
    row = re.search(rf'<tr data-listing="{listing.id}">(.*?)</tr>', too_much.text, re.S).group(1)
    assert '<p class="form-error" role="alert">only 14000.00 of this listing is left</p>' in row
    assert 'value="20000"' in row and f"{prefix}principal-error" not in row

    # All of it (the field left empty): more of the loan than one investor may hold.
    whole = buyer.post(url, data={"csrf_token": buyer_csrf, "idempotency_key": buy_key, "principal": ""})
    assert whole.status_code == 409
    row = re.search(rf'<tr data-listing="{listing.id}">(.*?)</tr>', whole.text, re.S).group(1)
    assert '<p class="form-error" role="alert">one investor may hold at most 50% of this loan (7000.00)' in row

    # Half of it with an empty wallet: the reason above the buy form.
    poor = buyer.post(url, data={"csrf_token": buyer_csrf, "idempotency_key": buy_key, "principal": "7000.00"})
    assert poor.status_code == 409
    row = re.search(rf'<tr data-listing="{listing.id}">(.*?)</tr>', poor.text, re.S).group(1)
    assert re.search(r'<p class="form-error" role="alert">not enough money[^<]*7450.00 needed', row), row
    assert f"{prefix}principal-error" not in row

    # Its own listing is not offered to the seller: said at the top of the page.
    own = seller.post(url, data={"csrf_token": csrf, "idempotency_key": str(uuid.uuid4())})
    assert own.status_code == 409
    assert "Not done: this is your own listing" in text_of(own.text)
    assert len(_open_listings(session_factory, investment_id)) == 1


def test_a_cancelled_listing_cannot_be_bought_and_the_page_says_so(client, people, session_factory):
    _, investment_id = _holding(session_factory, people)
    seller, csrf = logged_in(client, people["seller"])
    key = _key_of_row(_sell_row(seller.get("/app/investor").text, investment_id))
    assert _sell(seller, csrf, investment_id, key, "14000.00", "100").status_code == 303
    (listing,) = _open_listings(session_factory, investment_id)
    buyer, buyer_csrf = logged_in(client, people["buyer"])
    buyer.get("/app/investor")
    cancel = f"/app/investor/market/listings/{listing.id}/cancel"
    assert seller.post(cancel, data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    gone = buyer.post(
        f"/app/investor/market/listings/{listing.id}/purchase",
        data={"csrf_token": buyer_csrf, "idempotency_key": str(uuid.uuid4()), "principal": "14000"},
    )
    assert gone.status_code == 409
    assert "Not done: the listing is cancelled (you sent: principal 14000)" in text_of(gone.text)


def _async_browser(app) -> httpx.AsyncClient:
    """A browser of its own (an async client: the worker runs on the test's event loop)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def _web_user(b: httpx.AsyncClient, session_factory, money: str) -> tuple[uuid.UUID, str]:
    """An investor signed up through the API with `money` in the wallet, logged in through the
    login form in browser `b`: (its id, the session's CSRF token)."""
    email, password = f"investor-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery"
    created = await b.post("/v1/users", json={"email": email, "password": password, "role": "investor"})
    assert created.status_code == 201, created.text
    user_id = uuid.UUID(created.json()["id"])
    give_money(session_factory, user_id, money)
    form = await b.get("/app/login")
    answer = await b.post("/app/login", data={"email": email, "password": password, "csrf_token": csrf_of(form.text)})
    assert answer.status_code == 303, answer.text
    return user_id, csrf_of((await b.get("/app/investor")).text)


async def test_buying_through_the_form_settles_once_and_moves_the_claim(
    live_settings, dev_client, session_factory, seeded, task_queue
):
    _tradeable_at_once(session_factory)
    borrower = make_borrower(session_factory)
    app = create_app(live_settings)
    async with (
        running_worker(dev_client, live_settings, session_factory, task_queue),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api,
        _async_browser(app) as seller,
        _async_browser(app) as buyer,
    ):
        seller_id, seller_csrf = await _web_user(seller, session_factory, "25000")
        buyer_id, buyer_csrf = await _web_user(buyer, session_factory, "15000")
        # 50,000 over 6 months, half of it the seller's; the first installment a month away.
        loan_id = await fund_through_the_api(
            api, live_settings, borrower, [seller_id, make_investor(session_factory, "25000")]
        )
        await wait_loan_status(api, loan_id, bearer(live_settings, borrower, "borrower"), "active")
        await wait_for_agreements(dev_client, loan_id)  # (a trade waits for them)
        with session_factory() as session:
            holding = session.scalars(
                select(Investment).where(Investment.loan_id == uuid.UUID(loan_id), Investment.investor_id == seller_id)
            ).one()
        page = (await seller.get("/app/investor")).text
        listed = await seller.post(
            "/app/investor/market/listings",
            data={
                "csrf_token": seller_csrf,
                "idempotency_key": _key_of_row(_sell_row(page, holding.id)),
                "investment_id": str(holding.id),
                "principal": "10000.00",
                "price_percent": "100",
            },
        )
        assert listed.status_code == 303, listed.text
        (listing,) = _open_listings(session_factory, holding.id)

        market = (await buyer.get("/app/investor")).text
        row = re.search(rf'<tr data-listing="{listing.id}">(.*?)</tr>', market, re.S)
        assert row, market
        form = {"csrf_token": buyer_csrf, "idempotency_key": _key_of_row(row.group(1)), "principal": ""}
        url = f"/app/investor/market/listings/{listing.id}/purchase"
        bought = await buyer.post(url, data=form)
        assert bought.status_code == 303, bought.text
        assert bought.headers["location"] == "/app/investor?notice=bought"
        again = await buyer.post(url, data=form)  # a double click: the same trade, once
        assert again.status_code == 303 and again.headers["location"] == bought.headers["location"]

        home = (await buyer.get(bought.headers["location"])).text
        assert "Bought: the claim is yours" in home
        assert str(listing.id) not in _section(home, "offered")
        with session_factory() as session:
            (trade,) = session.scalars(select(MarketTrade).where(MarketTrade.listing_id == listing.id))
            assert trade.buyer_id == buyer_id and trade.principal == D("10000.00")
            new_holding = session.get_one(Investment, trade.buyer_investment_id)
        # The bought claim is the buyer's holding, and the buyer may offer it in turn.
        assert f'<tr data-loan="{loan_id}">' in _section(home, "holdings")
        assert "10\u202f000.00" in _sell_row(home, new_holding.id)
        bought_row = re.search(rf'<tr data-trade="{trade.id}" data-side="bought">(.*?)</tr>', home, re.S)
        assert bought_row and f"paid {_money(trade.buyer_pays)}" in text_of(bought_row.group(1))
        seller_home = (await seller.get("/app/investor")).text
        sold = re.search(rf'<tr data-listing="{listing.id}" data-status="sold">(.*?)</tr>', seller_home, re.S)
        assert sold and "sold: sold" in text_of(sold.group(1)) and "/cancel" not in sold.group(1)
        sold_row = re.search(rf'<tr data-trade="{trade.id}" data-side="sold">(.*?)</tr>', seller_home, re.S)
        assert sold_row, seller_home
        assert f"received {_money(trade.seller_gets)}" in text_of(sold_row.group(1))
        assert _money(trade.fee) in text_of(sold_row.group(1))
        assert 'value="15000.00"' in _sell_row(seller_home, holding.id)  # what the seller kept


def test_cancelling_a_listing_already_closed_says_why_at_the_top(client, people, session_factory):
    _, investment_id = _holding(session_factory, people)
    seller, csrf = logged_in(client, people["seller"])
    key = _key_of_row(_sell_row(seller.get("/app/investor").text, investment_id))
    assert _sell(seller, csrf, investment_id, key, "14000.00", "100").status_code == 303
    (listing,) = _open_listings(session_factory, investment_id)
    with unit_of_work(session_factory) as session:  # the loan's next event closed it meanwhile
        session.get_one(MarketListing, listing.id).status = "closed"
    answer = seller.post(f"/app/investor/market/listings/{listing.id}/cancel", data={"csrf_token": csrf})
    assert answer.status_code == 409
    assert '<p class="form-error" role="alert" id="page-error">Not cancelled: the listing is closed</p>' in answer.text


def _money(amount: Decimal) -> str:
    """An amount as the pages show it, after text_of folds its thin space: 13 930.00."""
    return f"{amount:,.2f}".replace(",", " ")


def _rule_form_values(page: str) -> list[tuple[str, str]]:
    """What the browser sends for the auto-invest form as drawn: its text fields' values and
    its ticked boxes."""
    form = re.search(r'<form method="post" action="/app/investor/auto-invest".*?</form>', page, re.S)
    assert form, page
    sent = []
    for tag in re.findall(r"<input[^>]*>", form.group(0)):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name is None:
            continue
        if 'type="checkbox"' in tag:
            if " checked" in tag:
                sent.append((name.group(1), value.group(1) if value else "on"))
        else:
            sent.append((name.group(1), value.group(1) if value else ""))
    return sent


def _as_form(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    form: dict[str, list[str]] = {}
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return form


def test_the_rule_form_sets_and_keeps_buying_on_the_market(client, people, session_factory):
    investor, _ = logged_in(client, people["buyer"])
    page = investor.get("/app/investor").text
    assert 'name="buy_on_market" ' in page and "Highest premium over par on the market" in page
    form = dict(_rule_form_values(page))
    assert "buy_on_market" not in form and form["max_market_premium_percent"] == "0.00"

    sent = [(k, v) for k, v in _rule_form_values(page) if k != "max_market_premium_percent"]
    sent += [("buy_on_market", "on"), ("max_market_premium_percent", "2,5 %"), ("is_active", "on")]
    saved = investor.post("/app/investor/auto-invest", data=_as_form(sent), follow_redirects=False)
    assert saved.status_code == 303, saved.text
    with session_factory() as session:
        rule = session.get_one(AutoInvestRuleRow, uuid.UUID(people["buyer"].id))
        assert rule.buy_on_market and rule.max_market_premium_percent == D("2.50")

    # Saved again as drawn (another field changed): the market settings are kept, not reset.
    drawn = _rule_form_values(investor.get("/app/investor").text)
    assert ("buy_on_market", "on") in drawn and ("max_market_premium_percent", "2.50") in drawn
    changed = [(k, "7000.00" if k == "max_amount_per_loan" else v) for k, v in drawn]
    assert investor.post("/app/investor/auto-invest", data=_as_form(changed), follow_redirects=False).status_code == 303
    with session_factory() as session:
        rule = session.get_one(AutoInvestRuleRow, uuid.UUID(people["buyer"].id))
        assert rule.buy_on_market and rule.max_market_premium_percent == D("2.50")
        assert rule.max_amount_per_loan == D("7000.00")

    # A premium the API refuses is said beside its field, with what was typed.
    bad = [(k, "150" if k == "max_market_premium_percent" else v) for k, v in changed]
    answer = investor.post("/app/investor/auto-invest", data=_as_form(bad), follow_redirects=False)
    assert answer.status_code == 422
    assert re.search(r'<span class="error" id="max_market_premium_percent-error">[^<]+</span>', answer.text)
    assert 'id="max_market_premium_percent" name="max_market_premium_percent" type="text" value="150"' in answer.text
    with session_factory() as session:
        assert session.get_one(AutoInvestRuleRow, uuid.UUID(people["buyer"].id)).max_market_premium_percent == D("2.50")

    # Ticked off: the rule no longer buys on the market.
    off = [(k, v) for k, v in changed if k != "buy_on_market"]
    assert investor.post("/app/investor/auto-invest", data=_as_form(off), follow_redirects=False).status_code == 303
    with session_factory() as session:
        assert not session.get_one(AutoInvestRuleRow, uuid.UUID(people["buyer"].id)).buy_on_market


def test_buying_all_never_pays_more_than_the_page_showed(client, people, session_factory):
    _, investment_id = _holding(session_factory, people)
    seller, csrf = logged_in(client, people["seller"])
    key = _key_of_row(_sell_row(seller.get("/app/investor").text, investment_id))
    assert _sell(seller, csrf, investment_id, key, "7000.00", "100").status_code == 303
    (listing,) = _open_listings(session_factory, investment_id)
    buyer, buyer_csrf = logged_in(client, people["buyer"])
    give_money(session_factory, uuid.UUID(people["buyer"].id), "10000")
    page = buyer.get("/app/investor").text
    row = re.search(rf'<tr data-listing="{listing.id}">(.*?)</tr>', page, re.S).group(1)
    shown = re.search(r'name="max_buyer_pays" value="([0-9.]+)"', row)
    assert shown and f"{D(shown.group(1)):,.2f}".replace(",", "\u202f") in row  # the total shown is the cap sent
    # The total grew since the page was drawn (here: the form says less than it costs now).
    dear = buyer.post(
        f"/app/investor/market/listings/{listing.id}/purchase",
        data={
            "csrf_token": buyer_csrf,
            "idempotency_key": _key_of_row(row),
            "principal": "",
            "max_buyer_pays": f"{D(shown.group(1)) - D('0.01'):.2f}",
        },
    )
    assert dear.status_code == 409
    refused_row = re.search(rf'<tr data-listing="{listing.id}">(.*?)</tr>', dear.text, re.S).group(1)
    assert f"it costs {shown.group(1)} today" in text_of(refused_row)
    with session_factory() as session:
        assert not session.scalars(select(MarketTrade)).all()


def test_own_open_listings_are_priced_even_past_the_markets_page(client, people, session_factory, monkeypatch):
    """The market shows the oldest listings first, a page of them; one's own open listing
    after that page is still shown priced, not as "not for sale"."""
    import web.investor_pages

    _, investment_id = _holding(session_factory, people)
    earlier = make_investor(session_factory, "0")
    other_loan = active_loan_in_db(session_factory, uuid.UUID(people["borrower"].id), [earlier])
    from api.routers.market import platform_today
    from investing.market import create_listing
    from models.users import User

    with unit_of_work(session_factory) as session:  # someone else's listing, older
        holding = session.scalars(select(Investment).where(Investment.loan_id == other_loan)).one()
        create_listing(
            session,
            session.get_one(User, earlier),
            holding.id,
            holding.amount,
            D("100.00"),
            None,
            platform_today(client.app.state.settings),  # (the platform's day: after 21:00 UTC, Moscow's tomorrow)
        )
    seller, csrf = logged_in(client, people["seller"])
    key = _key_of_row(_sell_row(seller.get("/app/investor").text, investment_id))
    assert _sell(seller, csrf, investment_id, key, "14000.00", "99.50").status_code == 303
    (listing,) = _open_listings(session_factory, investment_id)
    monkeypatch.setattr(web.investor_pages, "MARKET_LIMIT", 1)  # the market's page: the older listing only
    page = seller.get("/app/investor").text
    mine = re.search(rf'<tr data-listing="{listing.id}" data-status="open">(.*?)</tr>', page, re.S)
    assert mine, page
    assert "not for sale today" not in mine.group(1) and "13\u202f930.00" in mine.group(1)
