"""The back office's pages over HTTP (no browser): sessions, CSRF, roles, the money forms'
idempotency, and each page with real data. The browser tests (test_web_browser.py) drive the
same pages in Chromium through the whole loan lifecycle."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from core.db import unit_of_work
from models.ledger import Deposit
from models.loans import LoanRequest
from models.products import LoanProduct
from models.users import User
from tests.api_helpers import sign_up
from tests.loan_helpers import active_loan_in_db
from tests.web_helpers import csrf_of, keys_of, text_of, web_login
from web.session import LOGIN_NONCE_COOKIE, SESSION_COOKIE

D = Decimal

PAGES = {
    "operator": [
        "/app/operator",
        "/app/operator/payments",
        "/app/operator/reviews",
        "/app/operator/products",
        "/app/operator/products/new",
        "/app/operator/products/standard",
        "/app/operator/loans",
        "/app/operator/ledger",
    ],
    "compliance": ["/app/compliance", "/app/compliance/register"],
    "investor": ["/app/investor"],
    "borrower": ["/app/borrower", "/app/borrower/calculator"],
}


def browser(client: TestClient) -> TestClient:
    """Another browser on the same app: its own cookies."""
    return TestClient(client.app)


@pytest.fixture
def people(client, seeded, operator, compliance):
    borrower = sign_up(client, "borrower")
    profile = {"monthly_income": "150000.00", "monthly_obligations": "0.00", "employment_months": 36}
    assert client.put("/v1/users/me/profile", json=profile, headers=borrower.headers).status_code == 200
    return {
        "operator": operator,
        "compliance": compliance,
        "investor": sign_up(client, "investor"),
        "borrower": borrower,
    }


def logged_in(client: TestClient, account) -> tuple[TestClient, str]:
    b = browser(client)
    return b, web_login(b, account.email, account.password)


def test_login_lands_each_role_on_its_home_and_sets_a_strict_http_only_cookie(client, people):
    for role, account in people.items():
        b = browser(client)
        form = b.get("/app/login")
        assert "<title>Log in" in form.text and '<label for="email">' in form.text
        answer = b.post(
            "/app/login",
            data={"email": account.email, "password": account.password, "csrf_token": csrf_of(form.text)},
            follow_redirects=False,
        )
        assert answer.status_code == 303 and answer.headers["location"] == f"/app/{role}"
        cookie = next(h for h in answer.headers.get_list("set-cookie") if h.startswith(f"{SESSION_COOKIE}="))
        flags = cookie.lower()
        assert "httponly" in flags and "samesite=strict" in flags and "path=/app" in flags
        assert "secure" not in flags  # plain http to localhost in test; production below
        home = b.get(f"/app/{role}")
        assert home.status_code == 200 and account.email in home.text


def test_the_session_cookie_is_secure_outside_dev_and_test(settings):
    assert settings.model_copy(update={"ENVIRONMENT": "production"}).web_cookie_secure
    assert not settings.web_cookie_secure
    assert settings.model_copy(update={"WEB_COOKIE_SECURE": True}).web_cookie_secure


def test_a_wrong_password_shows_the_error_and_starts_no_session(client, people):
    b = browser(client)
    form = b.get("/app/login")
    answer = b.post(
        "/app/login",
        data={"email": people["investor"].email, "password": "wrong password!", "csrf_token": csrf_of(form.text)},
    )
    assert answer.status_code == 401
    assert "wrong email or password" in answer.text and 'role="alert"' in answer.text
    assert SESSION_COOKIE not in b.cookies
    assert b.get("/app/investor", follow_redirects=False).status_code == 303


def test_the_login_form_needs_its_csrf_token(client, people):
    b = browser(client)
    b.get("/app/login")
    assert b.cookies.get(LOGIN_NONCE_COOKIE)
    refused = b.post("/app/login", data={"email": people["investor"].email, "password": people["investor"].password})
    assert refused.status_code == 403
    assert SESSION_COOKIE not in b.cookies


def test_login_goes_back_only_to_a_page_of_this_site(client, people):
    account = people["operator"]
    for target, expected in (
        ("/app/operator/ledger", "/app/operator/ledger"),
        ("//evil.example/x", "/app/operator"),
        ("https://evil.example", "/app/operator"),
        ("/app/\\evil", "/app/operator"),
    ):
        b = browser(client)
        form = b.get(f"/app/login?next={target}")
        answer = b.post(
            "/app/login",
            data={
                "email": account.email,
                "password": account.password,
                "csrf_token": csrf_of(form.text),
                "next": target,
            },
            follow_redirects=False,
        )
        assert answer.headers["location"] == expected


def test_anonymous_visitors_are_sent_to_the_login_form(client, seeded):
    b = browser(client)
    for pages in PAGES.values():
        for page in pages:
            answer = b.get(page, follow_redirects=False)
            assert answer.status_code == 303, page
            assert answer.headers["location"].startswith("/app/login?next=")


def test_each_role_sees_its_pages_and_no_other_roles(client, people):
    for role, account in people.items():
        b, _ = logged_in(client, account)
        for page_role, pages in PAGES.items():
            for page in pages:
                answer = b.get(page, follow_redirects=False)
                allowed = page_role == role or (role == "operator" and page_role == "compliance")
                if allowed:
                    assert answer.status_code == 200, (role, page, answer.text[:500])
                    assert "<title>" in answer.text and "</html>" in answer.text
                else:
                    assert answer.status_code in (403, 404), (role, page, answer.status_code)
                    assert "text/html" in answer.headers["content-type"]


def test_a_borrower_typing_an_operator_url_gets_403_and_no_data(client, people):
    b, _ = logged_in(client, people["borrower"])
    answer = b.get("/app/operator/payments")
    assert answer.status_code == 403
    assert "Not for your role" in answer.text and "Deposits awaiting" not in answer.text
    answer = b.get(f"/app/operator/loans/{uuid.uuid4()}")
    assert answer.status_code == 403


def test_pages_carry_security_headers_and_are_not_cached(client, people):
    b, _ = logged_in(client, people["investor"])
    answer = b.get("/app/investor")
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "<script" not in answer.text


def test_unknown_pages_are_html_404_and_the_api_keeps_problem_json(client, people):
    b, _ = logged_in(client, people["investor"])
    page = b.get("/app/no/such/page")
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    assert b.get("/app/operator/loans/not-a-uuid").status_code in (403, 404)
    api = b.get("/v1/no/such/route")
    assert api.status_code == 404 and api.headers["content-type"] == "application/problem+json"


def deposits_of(session_factory, user_id) -> list[Deposit]:
    with session_factory() as session:
        return list(session.scalars(select(Deposit).where(Deposit.user_id == uuid.UUID(user_id))))


def test_a_form_without_its_csrf_token_does_nothing(client, people, session_factory):
    b, csrf = logged_in(client, people["investor"])
    other, other_csrf = logged_in(client, people["borrower"])
    key = str(uuid.uuid4())
    for data, headers in (
        ({"amount": "100.00", "idempotency_key": key}, {}),
        ({"amount": "100.00", "idempotency_key": key, "csrf_token": "0" * 64}, {}),
        ({"amount": "100.00", "idempotency_key": key, "csrf_token": other_csrf}, {}),  # another session's
        ({"amount": "100.00", "idempotency_key": key, "csrf_token": csrf}, {"Sec-Fetch-Site": "cross-site"}),
        ({"amount": "100.00", "idempotency_key": key, "csrf_token": csrf}, {"Origin": "https://evil.example"}),
    ):
        answer = b.post("/app/investor/deposits", data=data, headers=headers)
        assert answer.status_code == 403 and "Form refused" in answer.text
    assert deposits_of(session_factory, people["investor"].id) == []
    # ... and with it, the same form works
    assert b.post("/app/investor/deposits", data={"amount": "100.00", "idempotency_key": key, "csrf_token": csrf})
    assert len(deposits_of(session_factory, people["investor"].id)) == 1


def test_a_money_form_sent_twice_moves_money_once(client, people, session_factory):
    b, csrf = logged_in(client, people["investor"])
    page = b.get("/app/investor").text
    key = keys_of(page)[0]
    for _ in range(3):  # a double click, then a reload of the POST
        answer = b.post(
            "/app/investor/deposits",
            data={"amount": "1 500,50", "idempotency_key": key, "csrf_token": csrf},
            follow_redirects=False,
        )
        assert answer.status_code == 303 and answer.headers["location"].endswith("notice=deposit-announced")
    deposits = deposits_of(session_factory, people["investor"].id)
    assert [d.amount for d in deposits] == [D("1500.50")]
    assert keys_of(b.get("/app/investor").text)[0] != key  # the next form is a new request


def test_invalid_amounts_are_shown_beside_their_field_and_nothing_is_done(client, people, session_factory):
    b, csrf = logged_in(client, people["investor"])
    answer = b.post(
        "/app/investor/deposits", data={"amount": "-5", "idempotency_key": str(uuid.uuid4()), "csrf_token": csrf}
    )
    assert answer.status_code == 422
    assert 'id="deposit-amount" name="amount"' in answer.text and 'aria-invalid="true"' in answer.text
    assert 'id="deposit-amount-error"' in answer.text
    assert deposits_of(session_factory, people["investor"].id) == []


def test_operator_confirms_a_deposit_and_the_investor_sees_the_money(client, people, session_factory):
    investor, investor_csrf = logged_in(client, people["investor"])
    investor.post(
        "/app/investor/deposits",
        data={"amount": "25000.00", "idempotency_key": str(uuid.uuid4()), "csrf_token": investor_csrf},
    )
    deposit = deposits_of(session_factory, people["investor"].id)[0]
    operator, csrf = logged_in(client, people["operator"])
    page = operator.get("/app/operator/payments").text
    assert str(deposit.id) in page
    answer = operator.post(
        f"/app/operator/deposits/{deposit.id}/confirm",
        data={"bank_reference": "PP-1", "idempotency_key": str(uuid.uuid4()), "csrf_token": csrf},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert "The deposit is confirmed" in operator.get(answer.headers["location"]).text
    dashboard = text_of(investor.get("/app/investor").text)
    assert "Balance 25 000.00 RUB" in dashboard.replace("\u202f", " ")


def test_a_deposit_is_rejected_only_with_a_reason(client, people, session_factory):
    investor, investor_csrf = logged_in(client, people["investor"])
    investor.post(
        "/app/investor/deposits",
        data={"amount": "10.00", "idempotency_key": str(uuid.uuid4()), "csrf_token": investor_csrf},
    )
    deposit = deposits_of(session_factory, people["investor"].id)[0]
    operator, csrf = logged_in(client, people["operator"])
    url = f"/app/operator/deposits/{deposit.id}/reject"
    answer = operator.post(url, data={"reason": "", "idempotency_key": str(uuid.uuid4()), "csrf_token": csrf})
    assert answer.status_code == 422
    assert f'id="reject-{deposit.id}-reason-error"' in answer.text
    answer = operator.post(
        url, data={"reason": "no such bank payment", "idempotency_key": str(uuid.uuid4()), "csrf_token": csrf}
    )
    assert answer.status_code == 200 and "The deposit is rejected" in answer.text
    deposit = deposits_of(session_factory, people["investor"].id)[0]
    assert deposit.status == "rejected" and deposit.rejection_reason == "no such bank payment"


def test_logging_out_ends_the_session_even_for_a_copied_cookie(client, people):
    b, csrf = logged_in(client, people["investor"])
    copied = b.cookies.get(SESSION_COOKIE, path="/app") or b.cookies.get(SESSION_COOKIE)
    answer = b.post("/app/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert answer.status_code == 303 and "notice=logged-out" in answer.headers["location"]
    thief = browser(client)
    thief.cookies.set(SESSION_COOKIE, copied, path="/app")
    assert thief.get("/app/investor", follow_redirects=False).status_code == 303


def test_blocking_a_user_ends_their_web_session(client, people, session_factory):
    b, _ = logged_in(client, people["investor"])
    assert b.get("/app/investor").status_code == 200
    operator = people["operator"]
    blocked = client.post(
        f"/v1/operator/users/{people['investor'].id}/block", json={"reason": "test"}, headers=operator.headers
    )
    assert blocked.status_code == 200
    assert b.get("/app/investor", follow_redirects=False).status_code == 303


def test_an_operator_changes_a_product_and_sees_the_diff(client, people, session_factory):
    b, csrf = logged_in(client, people["operator"])
    page = b.get("/app/operator/products/standard").text
    assert "The first version." in page
    values = {
        name: value
        for name, value in __import__("re").findall(
            r'<input id="[^"]*" name="([a-z_A-E]+)" type="text" value="([^"]*)"', page
        )
    }
    assert values["rate_B"] and values["min_amount"]
    values.update(
        {"rate_B": "19.5", "name": "Standard loan <b>v2</b>", "csrf_token": csrf, "amortization_method": "annuity"}
    )
    answer = b.post("/app/operator/products/standard", data=values, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].endswith("notice=product-changed")
    page = b.get(answer.headers["location"]).text
    assert "version 2" in page
    assert "rates_by_grade.B" in page and '<ins class="diff-new">19.50</ins>' in page
    assert "&lt;b&gt;v2&lt;/b&gt;" in page  # escaped, never markup
    with session_factory() as session:
        versions = session.scalar(select(func.count()).select_from(LoanProduct).where(LoanProduct.code == "standard"))
    assert versions == 2
    # The same terms again write no version
    answer = b.post("/app/operator/products/standard", data=values, follow_redirects=False)
    assert answer.headers["location"].endswith("notice=product-unchanged")


def test_a_bad_product_shows_the_error_beside_its_field(client, people, session_factory):
    b, csrf = logged_in(client, people["operator"])
    answer = b.post(
        "/app/operator/products/new",
        data={"code": "Bad Code", "name": "x", "currency": "RUB", "csrf_token": csrf, "amortization_method": "annuity"},
    )
    assert answer.status_code == 422
    assert 'id="code-error"' in answer.text
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(LoanProduct).where(LoanProduct.code == "Bad Code")) == 0


def test_the_operator_loan_page_shows_lifecycle_schedule_and_investors(client, people, session_factory):
    borrower = uuid.UUID(people["borrower"].id)
    investor = uuid.UUID(people["investor"].id)
    loan_id = active_loan_in_db(session_factory, borrower, [investor], installment_status="overdue")
    with unit_of_work(session_factory) as session:
        session.execute(
            update(LoanRequest).where(LoanRequest.id == loan_id).values(purpose="<script>alert(1)</script>")
        )
    b, _ = logged_in(client, people["operator"])
    page = b.get(f"/app/operator/loans/{loan_id}").text
    assert 'class="state current" data-status="active"' in page or 'data-status="active" class="state current"' in page
    assert 'class="row-overdue"' in page
    assert people["investor"].email in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    listed = b.get("/app/operator/loans", params={"status": "active", "borrower": people["borrower"].email}).text
    assert str(loan_id) in listed
    assert str(loan_id) not in b.get("/app/operator/loans", params={"status": "repaid"}).text


def test_compliance_reads_the_trail_and_the_register(client, people, session_factory):
    borrower = uuid.UUID(people["borrower"].id)
    investor = uuid.UUID(people["investor"].id)
    loan_id = active_loan_in_db(session_factory, borrower, [investor])
    b, _ = logged_in(client, people["compliance"])
    page = b.get(f"/app/compliance/loans/{loan_id}")
    assert page.status_code == 200
    assert 'id="verify"' in page.text
    pdf = b.get(f"/app/compliance/loans/{loan_id}/trail.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    register = b.get("/app/compliance/register", params={"q": str(loan_id)})
    assert register.status_code == 200
    # Staff's pages are not the borrower's: the borrower is refused, not shown less.
    borrower_browser, _ = logged_in(client, people["borrower"])
    assert borrower_browser.get(f"/app/compliance/loans/{loan_id}").status_code == 403


def test_the_borrower_calculator_saves_a_simulation(client, people):
    b, csrf = logged_in(client, people["borrower"])
    page = b.get("/app/borrower/calculator", params={"product": "standard", "amount": "120 000", "term_months": "12"})
    assert page.status_code == 200, page.text
    assert "Amortization table" in page.text and "<svg" in page.text
    assert page.text.count('<tr><th scope="row">') >= 12
    bad = b.get("/app/borrower/calculator", params={"product": "standard", "amount": "12", "term_months": "12"})
    assert bad.status_code == 422 and 'class="form-error" role="alert"' in bad.text and "Amortization" not in bad.text
    worse = b.get("/app/borrower/calculator", params={"product": "standard", "amount": "lots", "term_months": "12"})
    assert worse.status_code == 422 and 'id="amount-error"' in worse.text
    saved = b.post(
        "/app/borrower/simulations",
        data={"product": "standard", "amount": "120000", "term_months": "12", "grade": "", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert saved.status_code == 303 and "/app/borrower/simulations/" in saved.headers["location"]
    simulation = b.get(saved.headers["location"])
    assert "Apply for" in simulation.text and "Simulation saved" in simulation.text
    # another borrower cannot open it
    other, _ = logged_in(client, sign_up(client, "borrower"))
    assert other.get(saved.headers["location"]).status_code == 404


def test_the_investor_dashboard_shows_holdings_and_the_annual_limit(client, people, session_factory):
    borrower = uuid.UUID(people["borrower"].id)
    investor = uuid.UUID(people["investor"].id)
    loan_id = active_loan_in_db(session_factory, borrower, [investor])
    b, _ = logged_in(client, people["investor"])
    page = b.get("/app/investor").text
    assert f'data-loan="{loan_id}"' in page
    assert 'id="limit-left"' in page and "Expected cash flow by month" in page
    with session_factory() as session:
        assert session.get(User, investor) is not None
