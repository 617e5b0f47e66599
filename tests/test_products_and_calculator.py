"""Products as versioned data, the public calculator and saved simulations."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.api_helpers import sign_up

STANDARD_TERMS = {
    "code": "standard",
    "name": "Standard consumer loan",
    "currency": "RUB",
    "min_amount": "10000.00",
    "max_amount": "5000000.00",
    "min_term_months": 3,
    "max_term_months": 36,
    "amortization_method": "annuity",
    "rates_by_grade": {"A": "14.00", "B": "17.00", "C": "20.00", "D": "24.00", "E": "29.00"},
    "interest_only_months": 0,
    "platform_fee_percent": "1.000",
    "reserve_fund_percent": "2.000",
    "funding_window_days": 14,
    "funding_window_minutes": None,
    "min_investment": "1000.00",
    "max_investor_share_percent": "50.000",
    "late_fee_grace_days": 3,
    "late_fee_percent_per_day": "0.100",
    "default_after_days_overdue": 90,
    "requires_manual_approval": False,
}


def test_calculator_matches_published_figures_and_is_public(client):
    response = client.post(
        "/v1/calculator",
        json={
            "amount": "15000.00",
            "rate_annual": "8",
            "term_months": 60,
            "method": "annuity",
            "start_date": "2026-01-31",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["payment"] == "304.15"
    assert len(body["schedule"]) == 60
    first, last = body["schedule"][0], body["schedule"][-1]
    assert first == {
        "payment_num": 1,
        "due_date": "2026-02-28",
        "principal": "204.15",
        "interest": "100.00",
        "total": "304.15",
        "balance_after": "14795.85",
        "interest_only": False,
    }
    assert last["balance_after"] == "0.00"
    assert sum(Decimal(i["principal"]) for i in body["schedule"]) == Decimal("15000.00")
    assert Decimal(body["total_payable"]) == Decimal("15000.00") + Decimal(body["total_interest"])
    mortgage = client.post("/v1/calculator", json={"amount": "200000", "rate_annual": "7.5", "term_months": 180})
    assert mortgage.json()["payment"] == "1854.02"


def test_calculator_differentiated_and_zero_rate(client):
    diff = client.post(
        "/v1/calculator",
        json={
            "amount": "90000.00",
            "rate_annual": "12",
            "term_months": 3,
            "method": "differentiated",
            "start_date": "2026-03-01",
        },
    ).json()
    assert [i["principal"] for i in diff["schedule"]] == ["30000.00", "30000.00", "30000.00"]
    assert [i["interest"] for i in diff["schedule"]] == ["900.00", "600.00", "300.00"]
    free = client.post("/v1/calculator", json={"amount": "100.00", "rate_annual": "0", "term_months": 3}).json()
    assert [i["total"] for i in free["schedule"]] == ["33.33", "33.33", "33.34"]
    assert free["total_interest"] == "0.00"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"term_months": 12.5}, "term_months"),
        ({"term_months": "12"}, "term_months"),
        ({"term_months": 0}, "term_months"),
        ({"term_months": 601}, "term_months"),
        ({"rate_annual": "-1"}, "rate_annual"),
        ({"rate_annual": "250"}, "rate_annual"),
        ({"rate_annual": "10.12345"}, "rate_annual"),  # rates have four decimals at most
        ({"amount": "1000.001"}, "amount"),
        ({"amount": "-5"}, "amount"),
        ({"method": "balloon"}, "method"),
        ({"start_date": "2026-02-30"}, "start_date"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_calculator_bad_input_is_422_with_the_field(client, change, field):
    body = {"amount": "50000.00", "rate_annual": "17", "term_months": 12, **change}
    response = client.post("/v1/calculator", json=body)
    assert response.status_code == 422, response.text
    assert any(e["field"] == field for e in response.json()["errors"]), response.json()


def test_calculator_refuses_a_loan_that_cannot_amortize(client):
    response = client.post("/v1/calculator", json={"amount": "1000.00", "rate_annual": "200", "term_months": 600})
    assert response.status_code == 422
    assert "cannot be scheduled to the kopek" in response.json()["detail"]


def test_calculator_refuses_a_monster_last_installment_and_prices_four_decimal_rates(client):
    # the rounded payment would leave 3,062,145.63 for the last month of this one
    monster = client.post("/v1/calculator", json={"amount": "4890435.23", "rate_annual": "73.82", "term_months": 282})
    assert monster.status_code == 422 and "cannot be scheduled to the kopek" in monster.json()["detail"]
    priced = client.post("/v1/calculator", json={"amount": "10000.00", "rate_annual": "9.4822", "term_months": 36})
    assert priced.status_code == 200, priced.text
    body = priced.json()
    assert body["rate_annual"] == "9.4822"
    assert body["schedule"][0]["interest"] == "79.02"  # 10,000 x 9.4822% / 12 = 79.018...
    last, payment = Decimal(body["schedule"][-1]["total"]), Decimal(body["payment"])
    assert abs(last - payment) <= Decimal("0.36")  # within a kopek a month of the term


def test_calculator_checks_product_ranges(client, seeded):
    low = client.post(
        "/v1/calculator", json={"amount": "9999.99", "rate_annual": "17", "term_months": 12, "product": "standard"}
    )
    assert low.status_code == 422 and "10000.00 to 5000000.00" in low.json()["detail"]
    long = client.post(
        "/v1/calculator", json={"amount": "50000", "rate_annual": "17", "term_months": 37, "product": "standard"}
    )
    assert long.status_code == 422 and "3 to 36 months" in long.json()["detail"]
    unknown = client.post(
        "/v1/calculator", json={"amount": "50000", "rate_annual": "17", "term_months": 12, "product": "nope"}
    )
    assert unknown.status_code == 404


def test_products_are_read_by_anyone_and_changed_by_operators_as_new_versions(client, seeded, operator):
    current = client.get("/v1/products/standard").json()
    assert {k: current[k] for k in STANDARD_TERMS} == STANDARD_TERMS
    assert current["version"] == 1
    borrower = sign_up(client, "borrower")
    changed = {**STANDARD_TERMS, "rates_by_grade": {**STANDARD_TERMS["rates_by_grade"], "E": "31.00"}}
    assert client.put("/v1/operator/products/standard", json=changed, headers=borrower.headers).status_code == 403
    response = client.put("/v1/operator/products/standard", json=changed, headers=operator.headers)
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2 and response.json()["rates_by_grade"]["E"] == "31.00"
    same = client.put("/v1/operator/products/standard", json=changed, headers=operator.headers)
    assert same.json()["version"] == 2 and same.headers["X-Product-Version-Created"] == "false"
    versions = client.get("/v1/operator/products/standard/versions", headers=operator.headers).json()
    assert [(v["version"], v["is_current"], v["rates_by_grade"]["E"]) for v in versions] == [
        (1, False, "29.00"),
        (2, True, "31.00"),
    ]
    assert client.get("/v1/products/standard").json()["version"] == 2


@pytest.mark.parametrize(
    "change, message",
    [
        ({"min_amount": "5000000.00", "max_amount": "10000.00"}, "max_amount"),
        ({"rates_by_grade": {"A": "14.00"}}, "each grade"),
        ({"rates_by_grade": {"A": "-1", "B": "1", "C": "1", "D": "1", "E": "1"}}, "rate for grade A"),
        ({"platform_fee_percent": "60", "reserve_fund_percent": "45"}, "below 100%"),
        ({"code": "Has Spaces"}, "code"),
        ({"amortization_method": "balloon"}, "amortization_method"),
        ({"funding_window_days": 0}, "funding_window_days"),
        ({"secret_flag": True}, "secret_flag"),
        ({"rates_by_grade": {"A": "9.48221", "B": "1", "C": "1", "D": "1", "E": "1"}}, "four decimals"),
        # limits that admit a loan whose last installment would dwarf the others
        (
            {"max_term_months": 600, "rates_by_grade": {g: "150" for g in "ABCDE"}},
            "cannot be scheduled to the kopek",
        ),
        # where rounding is luck (a few amounts of the range happen to schedule), no
        (
            {
                "min_amount": "4838434.71",
                "max_amount": "5000000.00",
                "min_term_months": 240,
                "max_term_months": 282,
                "rates_by_grade": {g: "73.82" for g in "ABCDE"},
            },
            "cannot be scheduled to the kopek",
        ),
    ],
)
def test_product_validation(client, seeded, operator, change, message):
    body = {**STANDARD_TERMS, "code": "other", **change}
    response = client.post("/v1/operator/products", json=body, headers=operator.headers)
    assert response.status_code == 422, response.text
    assert message in response.text


def test_new_product_and_duplicate(client, seeded, operator):
    body = {
        **STANDARD_TERMS,
        "code": "agro",
        "name": "Agricultural machinery",
        "amortization_method": "differentiated",
        "interest_only_months": 2,
        "requires_manual_approval": True,
        "rates_by_grade": {**STANDARD_TERMS["rates_by_grade"], "A": "9.4822"},  # priced as lenders price
    }
    created = client.post("/v1/operator/products", json=body, headers=operator.headers)
    assert created.status_code == 201 and created.json()["version"] == 1
    assert created.json()["rates_by_grade"]["A"] == "9.4822"
    assert client.post("/v1/operator/products", json=body, headers=operator.headers).status_code == 409
    codes = [p["code"] for p in client.get("/v1/products").json()]
    from products.catalog import CATALOG

    assert codes == sorted(["agro", *(terms.code for terms in CATALOG)])


def test_simulations_are_saved_for_their_owner_only(client, seeded):
    borrower = sign_up(client, "borrower")
    response = client.post(
        "/v1/simulations",
        json={"product": "standard", "amount": "120000.00", "term_months": 12, "start_date": "2026-12-01"},
        headers=borrower.headers,
    )
    assert response.status_code == 201, response.text
    simulation = response.json()
    # without a grade: priced at the product's highest rate, the most it could cost
    assert simulation["risk_grade"] is None and simulation["result"]["rate_annual"] == "29.00"
    assert simulation["result"]["schedule"][0]["due_date"] == "2027-01-01"
    graded = client.post(
        "/v1/simulations", json={"amount": "120000.00", "term_months": 12, "risk_grade": "A"}, headers=borrower.headers
    ).json()
    assert graded["result"]["rate_annual"] == "14.00"
    assert Decimal(graded["result"]["payment"]) < Decimal(simulation["result"]["payment"])
    again = client.get(f"/v1/simulations/{simulation['id']}", headers=borrower.headers)
    assert again.status_code == 200 and again.json() == simulation
    other = sign_up(client, "borrower")
    assert client.get(f"/v1/simulations/{simulation['id']}", headers=other.headers).status_code == 404
    investor = sign_up(client, "investor")
    assert client.get(f"/v1/simulations/{simulation['id']}", headers=investor.headers).status_code == 403
    out_of_range = client.post("/v1/simulations", json={"amount": "5000", "term_months": 12}, headers=borrower.headers)
    assert out_of_range.status_code == 422
