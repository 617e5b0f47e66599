"""The hot loan reads (GET /v1/loans, GET /v1/loans/{id}) send _loan_wire's dicts as JSON
without building a LoanOut per loan: the bytes must be LoanOut's own, for any loan."""

from __future__ import annotations

import collections
import json
import uuid
from datetime import UTC, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from api.routers.loans import _LOAN_OUT_COLUMNS, _WIRE_JSON, _loan_out, _loan_wire
from api.schemas.loans import AssetOut, LoanOut
from models.loan_status import LoanStatus
from models.loans import LoanRequest
from products.service import product_labels
from tests.api_helpers import sign_up
from tests.test_direct_reads import _funding_loans

Row = collections.namedtuple("Row", [column.key for column in _LOAN_OUT_COLUMNS])  # type: ignore[misc]

PRODUCT = uuid.uuid4()
PRODUCTS = {PRODUCT: ("standard", 3)}


def _loan_out_as_a_model(
    loan: Any, with_purpose: bool, products: dict[uuid.UUID, tuple[str, int]] = PRODUCTS
) -> LoanOut:
    """LoanOut built field by field, as the routes built it before _loan_wire: the reference."""
    code, version = products[loan.product_id]
    return LoanOut(
        id=loan.id,
        status=loan.status,
        amount=loan.amount,
        currency=loan.currency,
        funded_amount=loan.funded_amount,
        rate_annual=loan.rate_annual,
        risk_grade=loan.risk_grade,
        scoring_score=loan.scoring_score,
        term_months=loan.term_months,
        product=code,
        product_version=version,
        purpose=loan.purpose if with_purpose else None,
        rejection_reason=loan.rejection_reason,
        funding_deadline=loan.funding_deadline,
        disbursed_at=loan.disbursed_at,
        closed_at=loan.closed_at,
        created_at=loan.created_at,
        asset=AssetOut(
            kind=loan.asset_kind,
            description=loan.asset_description or "",
            price=loan.asset_price,
            down_payment=loan.down_payment or 0,
            seller_id=loan.seller_id,
            plan_id=loan.plan_id,
        )
        if loan.seller_id is not None and loan.asset_kind is not None and loan.asset_price is not None
        else None,
    )


# As PostgreSQL gives them: numeric(15, 2) and numeric(8, 4) come back at their scale; times
# are aware, in the session's zone (UTC, Moscow) or any other.
money = st.decimals(min_value=0, max_value=Decimal("9999999999999.99"), places=2)
rate = st.decimals(min_value=0, max_value=Decimal("200"), places=4)
zones = st.sampled_from([UTC, ZoneInfo("Europe/Moscow"), timezone(timedelta(hours=-3, minutes=-30))])
moment = st.datetimes(timezones=zones)
text = st.text(max_size=40)
loans = st.builds(
    Row,
    id=st.uuids(),
    status=st.sampled_from(list(LoanStatus)),
    amount=money,
    currency=st.sampled_from(["RUB", "EUR"]),
    funded_amount=money,
    rate_annual=st.none() | rate,
    risk_grade=st.none() | st.sampled_from(list("ABCDE")),
    scoring_score=st.none() | st.integers(min_value=0, max_value=1000),
    term_months=st.integers(min_value=1, max_value=600),
    product_id=st.just(PRODUCT),
    purpose=text,
    rejection_reason=st.none() | text,
    funding_deadline=st.none() | moment,
    disbursed_at=st.none() | moment,
    closed_at=st.none() | moment,
    created_at=moment,
    asset_kind=st.none() | text,
    asset_description=st.none() | text,
    asset_price=st.none() | money,
    down_payment=st.none() | money,
    seller_id=st.none() | st.uuids(),
    plan_id=st.none() | st.uuids(),
    borrower_id=st.uuids(),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(loans, max_size=5), st.booleans())
def test_the_wire_is_loan_outs_json_byte_for_byte(rows, with_purpose):
    expected = TypeAdapter(list[LoanOut]).dump_json([_loan_out_as_a_model(row, with_purpose) for row in rows])
    assert _WIRE_JSON.dump_json([_loan_wire(row, with_purpose, PRODUCTS) for row in rows]) == expected
    for row in rows:
        one = _loan_out_as_a_model(row, with_purpose)
        assert _WIRE_JSON.dump_json(_loan_wire(row, with_purpose, PRODUCTS)) == one.model_dump_json().encode()
        assert _loan_out(row, with_purpose, PRODUCTS) == one  # the model that other answers nest


def test_the_reads_still_document_loan_out(client: TestClient):
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    listed = paths["/v1/loans"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed == {"type": "array", "items": {"$ref": "#/components/schemas/LoanOut"}, "title": listed["title"]}
    one = paths["/v1/loans/{loan_id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert one == {"$ref": "#/components/schemas/LoanOut"}


def test_the_routes_send_loan_outs_json(client: TestClient, session_factory, seeded):
    """Through the routes, from the database: the same bytes as LoanOut's, as JSON."""
    borrower_loans = _funding_loans(session_factory, client, 2)
    investor = sign_up(client, "investor")
    with session_factory() as session:
        rows = {loan_id: session.get_one(LoanRequest, loan_id) for loan_id in borrower_loans}
        labels = product_labels(session, {row.product_id for row in rows.values()})
    for loan_id, row in rows.items():
        answer = client.get(f"/v1/loans/{loan_id}", headers=investor.headers)
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
        assert answer.content == TypeAdapter(LoanOut).dump_json(_loan_out_as_a_model(row, False, labels))
    listed = client.get("/v1/loans?status=funding&limit=200", headers=investor.headers)
    assert listed.status_code == 200 and listed.headers["content-type"] == "application/json"
    ours = [loan for loan in listed.json() if uuid.UUID(loan["id"]) in rows]
    expected = [_loan_out_as_a_model(rows[uuid.UUID(loan["id"])], False, labels) for loan in ours]
    assert json.dumps(ours, separators=(",", ":")).encode() == TypeAdapter(list[LoanOut]).dump_json(expected)
