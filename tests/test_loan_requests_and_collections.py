"""Loan requests (from a saved simulation) and the collection activity's allocation rules."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from temporalio.testing import ActivityEnvironment

from activities.loans import LoanActivities
from core.db import unit_of_work
from core.errors import Conflict, InvalidRequest
from loans.requests import create_loan_request
from models.ledger import LedgerTransaction
from models.loan_workflow import AmountsDue, CollectInput
from models.loans import LoanRequest, RepaymentInstallment
from models.product_terms import ProductTerms
from models.simulations import Simulation
from products.catalog import STANDARD
from products.service import change_product, current_product
from tests.ledger_helpers import assert_books_balance
from tests.loan_helpers import active_loan_in_db, balance_of, give_money, make_borrower, make_investor

D = Decimal
NOW = datetime(2026, 11, 22, tzinfo=UTC)


def saved_simulation(session, owner, amount="150000.00", term=18) -> uuid.UUID:
    product = current_product(session, "standard")
    simulation = Simulation(
        owner_id=owner,
        product_id=product.id,
        amount=D(amount),
        rate_annual=D("29.00"),
        term_months=term,
        method="annuity",
        start_date=date(2026, 12, 1),
        result={},
    )
    session.add(simulation)
    session.flush()
    return simulation.id


def test_loan_request_from_a_saved_simulation(session_factory, seeded):
    borrower = make_borrower(session_factory)
    with unit_of_work(session_factory) as session:
        simulation_id = saved_simulation(session, borrower)
        loan, created = create_loan_request(
            session,
            borrower,
            product_code=None,
            amount=None,
            term_months=None,
            purpose="car",
            simulation_id=simulation_id,
            client_key=None,
        )
        assert created and (loan.amount, loan.term_months, loan.simulation_id) == (D("150000.00"), 18, simulation_id)
        with pytest.raises(InvalidRequest, match="come from the simulation"):
            create_loan_request(
                session,
                borrower,
                product_code=None,
                amount=D("1000000.00"),
                term_months=None,
                purpose="car",
                simulation_id=simulation_id,
                client_key=None,
            )
    other = make_borrower(session_factory)
    with unit_of_work(session_factory) as session:
        with pytest.raises(InvalidRequest, match="no simulation"):
            create_loan_request(
                session,
                other,
                product_code=None,
                amount=None,
                term_months=None,
                purpose="car",
                simulation_id=simulation_id,
                client_key=None,
            )
    with unit_of_work(session_factory) as session:  # the product changes: the simulation is stale
        change_product(session, "standard", ProductTerms(**{**STANDARD.model_dump(), "late_fee_grace_days": 5}))
    with unit_of_work(session_factory) as session:
        with pytest.raises(Conflict, match="simulate again"):
            create_loan_request(
                session,
                borrower,
                product_code=None,
                amount=None,
                term_months=None,
                purpose="car",
                simulation_id=simulation_id,
                client_key=None,
            )


def test_loan_keeps_the_product_version_it_was_made_under(session_factory, seeded):
    borrower = make_borrower(session_factory)
    with unit_of_work(session_factory) as session:
        loan, _ = create_loan_request(
            session,
            borrower,
            product_code="standard",
            amount=D("50000"),
            term_months=12,
            purpose="x",
            simulation_id=None,
            client_key=None,
        )
        first_version = loan.product_id
        change_product(session, "standard", ProductTerms(**{**STANDARD.model_dump(), "min_investment": D("500.00")}))
    with session_factory() as session:
        assert session.get(LoanRequest, loan.id).product_id == first_version
        assert current_product(session, "standard").id != first_version


def test_partial_payment_goes_to_fees_then_interest_then_principal(session_factory, seeded):
    """The borrower holds 1,000.00 against two overdue installments: the oldest gets its fee,
    then its interest, then principal; nothing reaches the second."""
    borrower = make_borrower(session_factory)
    investors = [make_investor(session_factory, "30000") for _ in range(3)]
    loan_id = active_loan_in_db(session_factory, borrower, investors, installment_status="overdue")
    give_money(session_factory, borrower, "1000.00")
    activities = LoanActivities(session_factory)
    collect = CollectInput(
        loan_id=loan_id,
        borrower_id=borrower,
        currency="RUB",
        key=f"loan:{loan_id}:collection:1",
        purpose="installment",
        at=NOW,
        items=[
            AmountsDue(
                payment_num=1, fee=D("55.30"), interest=D("900.00"), principal=D("7000.00"), fee_accrued=D("55.30")
            ),
            AmountsDue(payment_num=2, fee=D("0.00"), interest=D("900.00"), principal=D("7000.00")),
        ],
    )
    result = ActivityEnvironment().run(activities.collect_installments, collect)
    assert result.total == D("1000.00")
    assert [(p.fee, p.interest, p.principal) for p in result.items] == [
        (D("55.30"), D("900.00"), D("44.70")),
        (D("0.00"), D("0.00"), D("0.00")),
    ]
    # retried (the worker died before reporting): the same answer, no second posting
    again = ActivityEnvironment().run(activities.collect_installments, collect)
    assert again == result
    with session_factory() as session:
        assert (
            session.scalar(
                select(func.count()).select_from(LedgerTransaction).where(LedgerTransaction.loan_id == loan_id)
            )
            == 1
        )
        row = session.scalars(
            select(RepaymentInstallment).where(
                RepaymentInstallment.loan_id == loan_id, RepaymentInstallment.payment_num == 1
            )
        ).one()
        assert (row.status, row.late_fee_paid, row.paid_interest, row.paid_principal) == (
            "overdue",
            D("55.30"),
            D("900.00"),
            D("44.70"),
        )
        assert_books_balance(session)
    # 1,000.00 among three equal investors: 333.34 + 333.33 + 333.33
    received = sorted(balance_of(session_factory, i).available for i in investors)
    assert received == [D("30333.33"), D("30333.33"), D("30333.34")]
    assert balance_of(session_factory, borrower).available == 0
