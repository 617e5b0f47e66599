"""The assignment (cession) agreement of a secondary-market trade: its figures on paper, its
parties by pseudonym only, one registered copy per party (issue: secondary market)."""

from __future__ import annotations

import io
import re
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pypdf
import pytest
from sqlalchemy import func, select

import documents.assignments as assignments
from compliance.audit import loan_records
from core.db import unit_of_work
from core.pseudonyms import pseudonym
from documents.assignments import (
    ASSIGNMENT_AGREEMENT,
    TradeFacts,
    assignment_agreement_context,
    register_assignment_agreements,
    render_assignment_agreement,
)
from documents.render import _money
from documents.store import DocumentStore
from loans.requests import create_loan_request
from models.records import Document
from models.users import User
from tests.loan_helpers import make_borrower, make_investor

D = Decimal

INSTALLMENTS = [
    {"payment_num": 4, "due_date": date(2025, 5, 15), "principal": D("4115.22"), "interest": D("123.45")},
    {"payment_num": 5, "due_date": date(2025, 6, 15), "principal": D("4115.22"), "interest": D("82.30")},
    {"payment_num": 6, "due_date": "2025-07-15", "principal": D("4115.23"), "interest": D("41.15")},
]


def pdf_text(content: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(content))
    return re.sub(r"\s+", " ", " ".join(page.extract_text() for page in reader.pages))


def trade_facts(loan_id: uuid.UUID, seller_id: uuid.UUID, buyer_id: uuid.UUID, **changes) -> TradeFacts:
    facts = TradeFacts(
        trade_id=uuid.uuid4(),
        loan_id=loan_id,
        seller_id=seller_id,
        buyer_id=buyer_id,
        principal=D("12345.67"),
        price_percent=D("98.5"),
        price=D("12160.48"),
        accrued_interest=D("61.73"),
        fee=D("121.60"),
        buyer_pays=D("12222.21"),
        seller_gets=D("12100.61"),
        traded_at=datetime(2025, 4, 20, 21, 30, 5, tzinfo=UTC),
        currency="RUB",
        loan_rate_annual=D("14"),
        remaining_installments=INSTALLMENTS,
        seller_holding=D("24691.34"),
    )
    return replace(facts, **changes)


@pytest.fixture
def trade(session_factory, seeded, settings):
    """A loan (as requested: the agreement needs its row, not its disbursement) and two
    investors: the seller and the buyer, with their pseudonyms and emails."""
    borrower = make_borrower(session_factory)
    seller, buyer = make_investor(session_factory, "0"), make_investor(session_factory, "0")
    with unit_of_work(session_factory) as session:
        loan, _ = create_loan_request(
            session,
            borrower,
            product_code="standard",
            amount=D("50000.00"),
            term_months=6,
            purpose="test",
            simulation_id=None,
            client_key=None,
        )
        emails = {u.id: u.email for u in session.scalars(select(User).where(User.id.in_([seller, buyer])))}
    names = (pseudonym("investor", seller, settings), pseudonym("investor", buyer, settings))
    return trade_facts(loan.id, seller, buyer), names, emails


def test_the_agreement_prints_the_trade_figures_and_names_parties_by_pseudonym_only(trade, settings):
    facts, (seller_name, buyer_name), emails = trade
    text = pdf_text(render_assignment_agreement(facts, settings, seller_name, buyer_name, copy_for="buyer"))

    assert f"Assignor (seller) {seller_name} Assignee (buyer) {buyer_name}" in text
    assert f"Loan {facts.loan_id}" in text and "Annual interest rate 14.00%" in text
    assert "Principal assigned 12 345.67 RUB" in text
    assert "Share of the seller's holding 50% of 24 691.34 RUB outstanding" in text
    assert "Price 98.50% of the principal assigned" in text
    assert "Price amount 12 160.48 RUB" in text
    assert "Accrued interest, paid by the buyer to the seller 61.73 RUB" in text
    assert "Buyer pays 12 222.21 RUB" in text
    assert "Platform fee, paid by the seller 121.60 RUB" in text
    assert "Seller receives 12 100.61 RUB" in text
    assert "Date 2025-04-21" in text  # the platform's day (Moscow): 21:30 UTC is past midnight there
    assert "Settled at 2025-04-20 21:30:05 (UTC)" in text
    for row in INSTALLMENTS:
        due = row["due_date"] if isinstance(row["due_date"], str) else row["due_date"].isoformat()
        total = row["principal"] + row["interest"]
        assert (
            f"{row['payment_num']} {due} {_money(row['principal'])} {_money(row['interest'])} {_money(total)}" in text
        ), text
    assert "Total 12 345.67 246.90 12 592.57" in text
    assert "The buyer's copy." in text
    for clause in (
        "The assignment takes effect at settlement",
        "From then on the buyer receives the assigned part of each installment",
        "The borrower's obligations are unchanged",
        "The platform keeps the register",
    ):
        assert clause in text
    unspaced = re.sub(r"\s+", "", text).lower()
    for person in (facts.seller_id, facts.buyer_id):
        for shown in (emails[person], str(person), person.hex):
            assert shown.lower() not in unspaced


def test_the_context_refuses_figures_that_do_not_add_up_and_names_that_are_not_pseudonyms(trade, settings):
    facts, (seller_name, buyer_name), emails = trade
    assert assignment_agreement_context(facts, settings, seller_name, buyer_name)["copy_for"] is None
    no_holding = assignment_agreement_context(replace(facts, seller_holding=None), settings, seller_name, buyer_name)
    assert no_holding["trade"]["share_percent"] is None
    for wrong in (
        {"buyer_pays": D("12222.22")},
        {"seller_gets": D("12222.21")},
        {"principal": D("12345.68"), "price": D("12160.49"), "buyer_pays": D("12222.22"), "seller_gets": D("12100.62")},
        {"traded_at": datetime(2025, 4, 20, 12, 0)},
        {"seller_holding": D("100.00")},
    ):
        with pytest.raises(ValueError):
            assignment_agreement_context(replace(facts, **wrong), settings, seller_name, buyer_name)
    for names in ((emails[facts.seller_id], buyer_name), (seller_name, str(facts.buyer_id)), (seller_name, "")):
        with pytest.raises(ValueError, match="pseudonym"):
            assignment_agreement_context(facts, settings, *names)
    with pytest.raises(ValueError):
        assignment_agreement_context(facts, settings, seller_name, buyer_name, copy_for="borrower")


def test_each_party_gets_its_own_registered_copy_once(trade, settings, session_factory, monkeypatch):
    facts, (seller_name, buyer_name), _ = trade
    store = DocumentStore(settings.documents_dir)
    renders = []
    real_render = assignments.render_pdf
    monkeypatch.setattr(assignments, "render_pdf", lambda *a: renders.append(a) or real_render(*a))

    with unit_of_work(session_factory) as session:
        first = register_assignment_agreements(session, store, facts, settings, seller_name, buyer_name)
    assert len(renders) == 2
    with unit_of_work(session_factory) as session:
        again = register_assignment_agreements(session, store, facts, settings, seller_name, buyer_name)
    assert len(renders) == 2  # nothing rendered the second time
    assert [d.id for d in again] == [d.id for d in first]

    seller_copy, buyer_copy = first
    assert (seller_copy.kind, seller_copy.subject_key, seller_copy.owner_id, seller_copy.loan_id) == (
        ASSIGNMENT_AGREEMENT,
        f"trade:{facts.trade_id}:seller",
        facts.seller_id,
        facts.loan_id,
    )
    assert (buyer_copy.kind, buyer_copy.subject_key, buyer_copy.owner_id, buyer_copy.loan_id) == (
        ASSIGNMENT_AGREEMENT,
        f"trade:{facts.trade_id}:buyer",
        facts.buyer_id,
        facts.loan_id,
    )
    assert seller_copy.sha256 != buyer_copy.sha256
    files = [p for p in settings.documents_dir.rglob("*") if p.is_file()]
    assert sorted(p.name for p in files) == sorted([seller_copy.sha256, buyer_copy.sha256])
    assert "The seller's copy." in pdf_text(store.read(seller_copy.sha256))
    assert "The buyer's copy." in pdf_text(store.read(buyer_copy.sha256))
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Document)) == 2
        registered = [r for r in loan_records(session, facts.loan_id) if r.action == "document.registered"]
        assert sorted(r.details["subject_key"] for r in registered) == sorted(
            [seller_copy.subject_key, buyer_copy.subject_key]
        )
