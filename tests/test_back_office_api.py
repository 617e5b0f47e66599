"""The API the web back office reads: loan filters, the review queue, a loan's overview, the
reserve fund, the register of documents, and deposit rejections with their reasons.

Loans, investments, installments and documents are written straight into the read side (no
Temporal): each test knows every figure it expects because it put them there."""

from __future__ import annotations

import inspect
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from core.db import unit_of_work
from core.temporal_client import workflow_ui_url
from ledger.accounts import platform_account
from ledger.postings import Leg, post_transaction
from ledger.reports import trial_balance
from models.ledger import Deposit
from models.loan_status import LoanStatus
from models.loans import Investment, InvestmentInstallment, LoanRequest, RepaymentInstallment
from models.products import LoanProduct
from models.records import Document
from products.catalog import STANDARD
from products.service import change_product, create_product
from tests.api_helpers import Account, sign_up
from workflows.loan import LoanWorkflow

D = Decimal
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def _product_id(session, code: str = "standard") -> uuid.UUID:
    return session.scalars(select(LoanProduct.id).where(LoanProduct.code == code, LoanProduct.is_current)).one()


def add_loan(
    session,
    borrower: Account | uuid.UUID,
    *,
    status: LoanStatus = LoanStatus.funding,
    grade: str | None = "A",
    product: str = "standard",
    amount: str = "100000.00",
    created_at: datetime | None = None,
    scoring_details: dict[str, Any] | None = None,
    currency: str = "RUB",
) -> uuid.UUID:
    loan_id = uuid.uuid4()
    session.add(
        LoanRequest(
            id=loan_id,
            borrower_id=uuid.UUID(borrower.id) if isinstance(borrower, Account) else borrower,
            product_id=_product_id(session, product),
            amount=D(amount),
            currency=currency,
            term_months=12,
            purpose=f"purpose of {loan_id}",
            status=status,
            risk_grade=grade,
            rate_annual=D("14.0000") if grade else None,
            scoring_score=700 if grade else None,
            workflow_id=f"loan-{loan_id}",
            scoring_details=scoring_details,
            created_at=created_at or datetime.now(UTC),
        )
    )
    session.flush()
    return loan_id


def add_investment(
    session,
    loan_id: uuid.UUID,
    investor: Account,
    amount: str,
    status: str = "active",
    *,
    cover: str | None = None,
    loss: str | None = None,
    created_at: datetime | None = None,
) -> uuid.UUID:
    investment = Investment(
        investor_id=uuid.UUID(investor.id),
        loan_id=loan_id,
        amount=D(amount),
        status=status,
        reserve_cover_amount=D(cover) if cover is not None else None,
        loss_amount=D(loss) if loss is not None else None,
        created_at=created_at or datetime.now(UTC),
    )
    session.add(investment)
    session.flush()
    return investment.id


def add_share(
    session,
    loan_id: uuid.UUID,
    investment_id: uuid.UUID,
    payment_num: int,
    principal: str,
    interest: str,
    got: tuple[str, str, str] = ("0", "0", "0"),
) -> None:
    session.add(
        InvestmentInstallment(
            investment_id=investment_id,
            payment_num=payment_num,
            loan_id=loan_id,
            principal=D(principal),
            interest=D(interest),
            received_principal=D(got[0]),
            received_interest=D(got[1]),
            received_fee=D(got[2]),
        )
    )
    session.flush()


def ids(answer) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()]


# -- GET /v1/loans: grade, product, borrower ------------------------------------------------------


def test_loan_filters_narrow_what_each_role_sees_and_borrower_is_for_staff(
    client, session_factory, seeded, operator, compliance
):
    alice, bob = sign_up(client, "borrower"), sign_up(client, "borrower")
    investor = sign_up(client, "investor")
    with unit_of_work(session_factory) as session:
        create_product(session, STANDARD.model_copy(update={"code": "smallbiz", "name": "Small business"}))
        old_smallbiz = _product_id(session, "smallbiz")
        # a loan made under version 1, then the product changes: the filter finds both versions
        ab = add_loan(session, alice, grade="B", product="smallbiz", created_at=T0 + timedelta(minutes=2))
        change_product(session, "smallbiz", STANDARD.model_copy(update={"code": "smallbiz", "name": "Small biz v2"}))
        assert _product_id(session, "smallbiz") != old_smallbiz
        aa = add_loan(session, alice, status=LoanStatus.active, grade="A", created_at=T0 + timedelta(minutes=1))
        ba = add_loan(session, bob, grade="A", product="smallbiz", created_at=T0 + timedelta(minutes=3))
        bc = add_loan(session, bob, grade="C", created_at=T0 + timedelta(minutes=4))
        add_investment(session, aa, investor, "1000.00")
    # alice: aa (grade A, standard, active), ab (B, smallbiz v1); bob: ba (A, smallbiz v2), bc (C, standard)
    aa, ab, ba, bc = str(aa), str(ab), str(ba), str(bc)

    for staff in (operator, compliance):

        def get(query: str, who: Account = staff) -> list[str]:
            return ids(client.get(f"/v1/loans?{query}", headers=who.headers))

        assert get("") == [bc, ba, ab, aa]  # newest first
        assert get("grade=A") == [ba, aa]
        assert get("product=smallbiz") == [ba, ab]
        assert get("grade=A&product=smallbiz") == [ba]
        assert get("product=standard&status=active") == [aa]
        assert get(f"borrower={alice.email.upper()}") == [ab, aa]  # an email in any case
        assert get(f"borrower={bob.id}") == [bc, ba]  # a user id
        assert get(f"borrower={bob.email}&grade=C") == [bc]
        assert get("borrower=nobody@example.com") == []
        assert get(f"borrower={uuid.uuid4()}") == []
        assert get("product=no-such-product") == []
    assert client.get("/v1/loans?grade=F", headers=operator.headers).status_code == 422
    assert client.get("/v1/loans?grade=a", headers=operator.headers).status_code == 422

    # the borrower: their own loans only, narrowed
    assert ids(client.get("/v1/loans?grade=A", headers=alice.headers)) == [aa]
    assert ids(client.get("/v1/loans?product=smallbiz", headers=alice.headers)) == [ab]
    assert ids(client.get("/v1/loans?grade=C", headers=alice.headers)) == []
    # the investor: open loans (or those they invested in), narrowed
    assert ids(client.get("/v1/loans?grade=A", headers=investor.headers)) == [ba]
    assert ids(client.get("/v1/loans?product=standard", headers=investor.headers)) == [bc]
    assert ids(client.get("/v1/loans?status=active&grade=A", headers=investor.headers)) == [aa]
    assert ids(client.get("/v1/loans?status=active&grade=B", headers=investor.headers)) == []

    # who borrows what is for staff: refused to anyone else, even about themselves
    for who, borrower in ((alice, alice.email), (alice, bob.id), (investor, alice.email), (investor, "x@example.com")):
        answer = client.get(f"/v1/loans?borrower={borrower}", headers=who.headers)
        assert answer.status_code == 403, answer.text
    assert client.get(f"/v1/loans?borrower={alice.email}").status_code == 401


# -- GET /v1/operator/reviews ----------------------------------------------------------------------

REASONS = [
    {"factor": "income", "points": 120, "reason": "income covers the payment 4.2 times"},
    {"factor": "history", "points": -40, "reason": "one late installment in 12 months"},
]


def test_the_review_queue_holds_exactly_the_loans_awaiting_an_operator_oldest_first(
    client, session_factory, seeded, operator, compliance
):
    from api.routers.scoring import AWAITING_REVIEW

    # The workflow writes this very mark when it starts to wait for an operator.
    assert f'"awaiting": "{AWAITING_REVIEW}"' in inspect.getsource(LoanWorkflow._await_review)
    borrower = sign_up(client, "borrower")
    awaiting = {"decision": "review", "reasons": REASONS, "awaiting": AWAITING_REVIEW}
    with unit_of_work(session_factory) as session:
        newer = add_loan(
            session,
            borrower,
            status=LoanStatus.scoring,
            grade="C",
            created_at=T0 + timedelta(hours=2),
            scoring_details={**awaiting, "reasons": REASONS[:1]},
        )
        older = add_loan(
            session, borrower, status=LoanStatus.scoring, grade="D", created_at=T0, scoring_details=awaiting
        )
        # not awaiting review: still being scored; another wait; decided; never scored
        add_loan(session, borrower, status=LoanStatus.scoring, grade=None, scoring_details=None)
        add_loan(
            session,
            borrower,
            status=LoanStatus.scoring,
            scoring_details={"decision": "review", "reasons": [], "awaiting": "something else"},
        )
        add_loan(session, borrower, status=LoanStatus.approved, scoring_details=awaiting)
        add_loan(session, borrower, status=LoanStatus.rejected, scoring_details=awaiting)

    for staff in (operator, compliance):
        answer = client.get("/v1/operator/reviews", headers=staff.headers)
        assert answer.status_code == 200, answer.text
        reviews = answer.json()
        assert [r["loan"]["id"] for r in reviews] == [str(older), str(newer)]
        first, second = reviews
        assert first["loan"]["status"] == "scoring" and first["loan"]["risk_grade"] == "D"
        assert first["loan"]["purpose"] == f"purpose of {older}"  # staff read everything
        assert first["loan"]["amount"] == "100000.00"
        assert first["scoring"]["loan_id"] == str(older)
        assert first["scoring"]["decision"] == "review"
        assert first["scoring"]["reasons"] == REASONS
        assert first["scoring"]["grade"] == "D" and first["scoring"]["score"] == 700
        assert second["scoring"]["reasons"] == REASONS[:1]
        # the same scoring as the loan's own scoring route gives
        assert first["scoring"] == client.get(f"/v1/loans/{older}/scoring", headers=staff.headers).json()

    paged = client.get("/v1/operator/reviews?limit=1&offset=1", headers=operator.headers).json()
    assert [r["loan"]["id"] for r in paged] == [str(newer)]
    assert client.get("/v1/operator/reviews", headers=borrower.headers).status_code == 403


# -- GET /v1/operator/loans/{id}/overview ----------------------------------------------------------


def test_a_loans_overview_adds_up_what_its_tables_hold(client, session_factory, seeded, operator, compliance, settings):
    borrower = sign_up(client, "borrower")
    first, second, late = (sign_up(client, "investor") for _ in range(3))
    with unit_of_work(session_factory) as session:
        loan = add_loan(session, borrower, status=LoanStatus.active)
        a = add_investment(session, loan, first, "60000.00", created_at=T0)
        b = add_investment(session, loan, second, "40000.00", created_at=T0 + timedelta(minutes=1))
        released = add_investment(session, loan, late, "5000.00", "released", created_at=T0 + timedelta(minutes=2))
        add_share(session, loan, a, 1, "30000.00", "600.00", ("30000.00", "600.00", "12.34"))
        add_share(session, loan, a, 2, "30000.00", "300.00")
        add_share(session, loan, b, 1, "20000.00", "400.00", ("15000.00", "400.00", "8.22"))
        add_share(session, loan, b, 2, "20000.00", "200.00", ("0.00", "50.00", "0.00"))
        for num, status, accrued, paid in ((1, "paid", "20.56", "20.56"), (2, "overdue", "10.00", "1.50")):
            session.add(
                RepaymentInstallment(
                    loan_id=loan,
                    payment_num=num,
                    due_date=date(2026, 10 + num, 22),
                    principal=D("50000.00"),
                    interest=D("1000.00"),
                    status=status,
                    late_fee_accrued=D(accrued),
                    late_fee_paid=D(paid),
                )
            )
        session.add(
            RepaymentInstallment(
                loan_id=loan,
                payment_num=3,
                due_date=date(2027, 1, 22),
                principal=D("0.00"),
                interest=D("0.00"),
            )
        )
        # another loan's money is not this one's
        other = add_loan(session, borrower, status=LoanStatus.active)
        c = add_investment(session, other, first, "7000.00")
        add_share(session, other, c, 1, "7000.00", "70.00", ("7000.00", "70.00", "99.99"))

    answer = client.get(f"/v1/operator/loans/{loan}/overview", headers=operator.headers)
    assert answer.status_code == 200, answer.text
    overview = answer.json()
    assert overview["loan_id"] == str(loan)
    assert overview["workflow_id"] == f"loan-{loan}"
    assert overview["temporal_ui_url"] == (
        f"http://localhost:{settings.TEMPORAL_UI_PORT}/namespaces/default/workflows/loan-{loan}"
    )
    lines = {line["id"]: line for line in overview["investments"]}
    assert [line["id"] for line in overview["investments"]] == [str(a), str(b), str(released)]
    assert {k: v for k, v in lines[str(a)].items() if k != "created_at"} == {
        "id": str(a),
        "investor_id": first.id,
        "investor_email": first.email,
        "amount": "60000.00",
        "status": "active",
        "received_principal": "30000.00",
        "received_interest": "600.00",
        "received_fees": "12.34",
        "outstanding_principal": "30000.00",
        "loss_amount": None,
        "reserve_cover_amount": None,
    }
    second_line = lines[str(b)]
    assert (
        second_line["investor_email"],
        second_line["received_principal"],
        second_line["received_interest"],
        second_line["received_fees"],
        second_line["outstanding_principal"],
    ) == (second.email, "15000.00", "450.00", "8.22", "25000.00")
    released_line = lines[str(released)]
    assert (released_line["status"], released_line["received_principal"], released_line["outstanding_principal"]) == (
        "released",
        "0.00",
        "0.00",
    )
    assert overview["late_fees"] == {"accrued": "30.56", "paid": "22.06", "outstanding": "8.50"}
    assert overview["reserve"] == {"covered": "0.00", "losses": "0.00"}
    assert overview["installments_by_status"] == {"pending": 1, "overdue": 1, "paid": 1, "written_off": 0}
    assert client.get(f"/v1/operator/loans/{loan}/overview", headers=compliance.headers).json() == overview

    assert client.get(f"/v1/operator/loans/{uuid.uuid4()}/overview", headers=operator.headers).status_code == 404
    for outsider in (borrower, first):
        assert client.get(f"/v1/operator/loans/{loan}/overview", headers=outsider.headers).status_code == 403


def test_a_defaulted_loans_overview_shows_the_cover_and_the_losses(client, session_factory, seeded, operator):
    borrower = sign_up(client, "borrower")
    first, second = sign_up(client, "investor"), sign_up(client, "investor")
    with unit_of_work(session_factory) as session:
        loan = add_loan(session, borrower, status=LoanStatus.defaulted)
        a = add_investment(session, loan, first, "30000.00", "defaulted", cover="1000.00", loss="19000.00")
        b = add_investment(session, loan, second, "20000.00", "defaulted", cover="500.00", loss="9500.00")
        add_share(session, loan, a, 1, "30000.00", "900.00", ("10000.00", "900.00", "0.00"))
        add_share(session, loan, b, 1, "20000.00", "600.00", ("10000.00", "600.00", "0.00"))
        session.add(
            RepaymentInstallment(
                loan_id=loan,
                payment_num=1,
                due_date=date(2026, 12, 22),
                principal=D("50000.00"),
                interest=D("1500.00"),
                status="written_off",
                late_fee_accrued=D("75.00"),
            )
        )
    overview = client.get(f"/v1/operator/loans/{loan}/overview", headers=operator.headers).json()
    assert overview["reserve"] == {"covered": "1500.00", "losses": "28500.00"}
    assert overview["late_fees"] == {"accrued": "75.00", "paid": "0.00", "outstanding": "75.00"}
    assert overview["installments_by_status"] == {"pending": 0, "overdue": 0, "paid": 0, "written_off": 1}
    by_id = {line["id"]: line for line in overview["investments"]}
    assert [(by_id[str(i)]["reserve_cover_amount"], by_id[str(i)]["loss_amount"]) for i in (a, b)] == [
        ("1000.00", "19000.00"),
        ("500.00", "9500.00"),
    ]
    # a defaulted investment is owed nothing more: what it was owed became cover and loss
    for investment_id in (a, b):
        line = by_id[str(investment_id)]
        assert line["outstanding_principal"] == "0.00"
        assert D(line["received_principal"]) + D(line["reserve_cover_amount"]) + D(line["loss_amount"]) == D(
            line["amount"]
        )


def test_the_temporal_ui_link_follows_the_setting(settings):
    assert (
        workflow_ui_url(settings, "loan-1")
        == f"http://localhost:{settings.TEMPORAL_UI_PORT}/namespaces/default/workflows/loan-1"
    )
    assert workflow_ui_url(settings, None) is None
    production = settings.model_copy(update={"ENVIRONMENT": "production"})
    assert workflow_ui_url(production, "loan-1") is None  # no guessed address in production
    configured = production.model_copy(
        update={"TEMPORAL_UI_URL": "https://temporal.example.com/", "TEMPORAL_NAMESPACE": "lending prod"}
    )
    assert workflow_ui_url(configured, "loan-1") == (
        "https://temporal.example.com/namespaces/lending%20prod/workflows/loan-1"
    )


# -- GET /v1/operator/ledger/reserve-fund ----------------------------------------------------------


def test_the_reserve_fund_report_matches_the_ledger_and_the_investments(
    client, session_factory, seeded, operator, compliance
):
    borrower = sign_up(client, "borrower")
    first, second = sign_up(client, "investor"), sign_up(client, "investor")
    with unit_of_work(session_factory) as session:
        fund = platform_account(session, "reserve_fund")
        nominal = platform_account(session, "nominal")
        post_transaction(
            session,
            key="test:reserve-fund:contribution",
            kind="reserve_contribution",
            legs=[Leg(nominal.id, D("-12345.67")), Leg(fund.id, D("12345.67"))],
            description="test contribution",
        )
        # two running loans the fund protects
        running = add_loan(session, borrower, status=LoanStatus.active)
        a = add_investment(session, running, first, "60000.00")
        b = add_investment(session, running, second, "40000.00")
        add_share(session, running, a, 1, "30000.00", "600.00", ("30000.00", "600.00", "0.00"))
        add_share(session, running, a, 2, "30000.00", "300.00")
        add_share(session, running, b, 1, "20000.00", "400.00", ("15000.00", "400.00", "0.00"))
        add_share(session, running, b, 2, "20000.00", "200.00")
        add_investment(session, running, second, "5000.00", "released")
        young = add_loan(session, borrower, status=LoanStatus.active, amount="10000.00")
        add_investment(session, young, first, "10000.00")  # nothing collected yet
        # not protected: still funding, repaid
        add_investment(session, add_loan(session, borrower, status=LoanStatus.funding), first, "5000.00", "pending")
        add_investment(session, add_loan(session, borrower, status=LoanStatus.repaid), first, "8000.00", "repaid")
        # what the fund paid: two covered investments, one the empty fund could not cover
        defaulted = add_loan(session, borrower, status=LoanStatus.defaulted)
        add_investment(session, defaulted, first, "30000.00", "defaulted", cover="1000.00", loss="19000.00")
        add_investment(session, defaulted, second, "20000.00", "defaulted", cover="500.00", loss="9500.00")
        broke = add_loan(session, borrower, status=LoanStatus.defaulted)
        add_investment(session, broke, first, "10000.00", "defaulted", cover="0.00", loss="10000.00")
        # another currency's loans are another fund's
        usd = add_loan(session, borrower, status=LoanStatus.active, currency="USD")
        add_investment(session, usd, first, "3000.00")
        usd_defaulted = add_loan(session, borrower, status=LoanStatus.defaulted, currency="USD")
        add_investment(session, usd_defaulted, first, "3000.00", "defaulted", cover="300.00", loss="2700.00")
        fund_line = next(line for line in trial_balance(session).accounts if line.code == "reserve_fund:RUB")

    expected = {
        "currency": "RUB",
        "balance": "12345.67",
        "covered_total": "1500.00",
        "covered_investments": 2,
        "outstanding_principal": "65000.00",  # 30000 + 25000 + 10000
        "loans_protected": 2,
    }
    for staff in (operator, compliance):
        answer = client.get("/v1/operator/ledger/reserve-fund", headers=staff.headers)
        assert answer.status_code == 200, answer.text
        assert answer.json() == expected
    assert D(expected["balance"]) == fund_line.balance == fund_line.postings_total

    usd_report = client.get("/v1/operator/ledger/reserve-fund?currency=USD", headers=operator.headers).json()
    assert usd_report == {
        "currency": "USD",
        "balance": "0.00",  # no USD fund: read as empty, and not opened by reading
        "covered_total": "300.00",
        "covered_investments": 1,
        "outstanding_principal": "3000.00",
        "loans_protected": 1,
    }
    with session_factory() as session:
        assert "reserve_fund:USD" not in {line.code for line in trial_balance(session).accounts}
    assert client.get("/v1/operator/ledger/reserve-fund?currency=rub", headers=operator.headers).status_code == 422
    assert client.get("/v1/operator/ledger/reserve-fund", headers=first.headers).status_code == 403


# -- GET /v1/register ------------------------------------------------------------------------------


def test_the_register_finds_documents_by_each_kind_of_term_and_only_those(
    client, session_factory, seeded, operator, compliance
):
    borrower = sign_up(client, "borrower")
    alice = sign_up(client, "investor", email=f"alice-{uuid.uuid4().hex[:6]}@example.com")
    bob = sign_up(client, "investor", email=f"bob-{uuid.uuid4().hex[:6]}@example.com")
    investment_id = uuid.uuid4()
    with unit_of_work(session_factory) as session:
        loan, other_loan = add_loan(session, borrower), add_loan(session, borrower)

        def document(kind: str, subject_key: str, loan_id, owner: Account, sha256: str, minutes: int) -> str:
            row = Document(
                kind=kind,
                subject_key=subject_key,
                loan_id=loan_id,
                owner_id=uuid.UUID(owner.id),
                sha256=sha256,
                size_bytes=1000 + minutes,
                content_type="application/pdf",
                created_at=T0 + timedelta(minutes=minutes),
            )
            session.add(row)
            session.flush()
            return str(row.id)

        d1 = document("investment_agreement", f"investment:{investment_id}", loan, alice, "1" * 64, 1)
        d2 = document("borrower_agreement", f"loan:{loan}", loan, borrower, "2" * 64, 2)
        d3 = document("investor_statement", f"statement:2026-11:{bob.id}", None, bob, "fedcba98" + "3" * 56, 3)
        d4 = document("investment_agreement", "investment:100%_off", other_loan, bob, "4" * 64, 4)

    def search(query: str, who: Account = operator) -> list[str]:
        answer = client.get(f"/v1/register?{query}", headers=who.headers)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert page["total"] >= len(page["items"])
        return [item["id"] for item in page["items"]]

    everything = client.get("/v1/register", headers=operator.headers).json()
    assert [i["id"] for i in everything["items"]] == [d4, d3, d2, d1] and everything["total"] == 4  # newest first

    # a document id, a loan id (exact)
    assert search(f"q={d1}") == [d1]
    assert search(f"q=%20%20{d3}%20") == [d3]  # trimmed
    assert search(f"q={loan}") == [d2, d1]
    assert search(f"q={uuid.uuid4()}") == []
    # a sha256 prefix of six hex digits or more, any case
    assert search("q=fedcba") == [d3]
    assert search("q=FEDCBA98") == [d3]
    assert search("q=fedcb") == []  # too short to be a prefix
    assert search("q=" + "3" * 10) == []  # in the middle of a sha256: not a prefix
    assert search("q=" + "1" * 64) == [d1]
    # a kind, whole, any case
    assert search("q=BORROWER_AGREEMENT") == [d2]
    assert search("q=investment_agreement") == [d4, d1]
    assert search("q=agreement") == []  # not a kind, in no subject key or email
    # a piece of a subject key
    assert search("q=statement:2026-11") == [d3]
    assert search(f"q={str(investment_id)[:13].upper()}") == [d1]
    # a piece of the owner's email
    assert search(f"q={alice.email.split('@')[0].upper()}") == [d1]
    assert search(f"q={bob.email.split('@')[0]}") == [d4, d3]
    assert search("q=example.com") == [d4, d3, d2, d1]
    # LIKE's wildcards are searched for as themselves
    assert search("q=%25") == [d4]
    assert search("q=_") == [d4]
    assert search("q=100%25_off") == [d4]
    assert search("q=1%25_") == []
    # narrowed by kind and loan, with the term or alone
    assert search("kind=investment_agreement") == [d4, d1]
    assert search(f"loan_id={loan}") == [d2, d1]
    assert search(f"kind=investment_agreement&q={loan}") == [d1]
    assert search(f"loan_id={other_loan}&q={alice.email}") == []
    # pages, and the total of every page
    first_page = client.get("/v1/register?limit=2", headers=operator.headers).json()
    assert ([i["id"] for i in first_page["items"]], first_page["total"]) == ([d4, d3], 4)
    next_page = client.get("/v1/register?limit=2&offset=2&q=example.com", headers=operator.headers).json()
    assert ([i["id"] for i in next_page["items"]], next_page["total"]) == ([d2, d1], 4)
    for bad in ("limit=0", "limit=201", "offset=-1", "q=" + "x" * 201, "loan_id=not-an-id"):
        assert client.get(f"/v1/register?{bad}", headers=operator.headers).status_code == 422, bad

    # staff see every owner; the items are the register's usual items
    for staff in (operator, compliance):
        items = {i["id"]: i for i in client.get("/v1/register", headers=staff.headers).json()["items"]}
        assert {i: items[i]["owner_email"] for i in items} == {
            d1: alice.email,
            d2: borrower.email,
            d3: bob.email,
            d4: bob.email,
        }
        assert (items[d1]["owner_id"], items[d1]["url"], items[d1]["loan_id"]) == (
            alice.id,
            f"/v1/documents/{d1}",
            str(loan),
        )
    # anyone else: no register, and an owner's email only their own (need to know)
    assert client.get("/v1/register", headers=borrower.headers).status_code == 403
    listed = {d["id"]: d for d in client.get(f"/v1/loans/{loan}/documents", headers=borrower.headers).json()}
    assert (listed[d1]["owner_email"], listed[d1]["owner_id"]) == (None, None)
    assert listed[d2]["owner_email"] == borrower.email
    own = client.get("/v1/users/me/documents", headers=bob.headers).json()
    assert {d["owner_email"] for d in own} == {bob.email}


# -- POST /v1/operator/deposits/{id}/reject ------------------------------------------------------------


def test_a_deposit_rejection_needs_a_reason_which_is_stored_and_shown(client, session_factory, operator):
    investor = sign_up(client, "investor")
    created = client.post("/v1/wallets/deposits", json={"amount": "2500.00"}, headers=investor.headers).json()
    url = f"/v1/operator/deposits/{created['id']}/reject"
    assert created["rejection_reason"] is None

    for body in (
        None,
        {},
        {"reason": ""},
        {"reason": "  "},
        {"reason": "x" * 501},
        {"reason": "a good reason", "why": "x"},
    ):
        answer = client.post(url, json=body, headers=operator.headers)
        assert answer.status_code == 422, (body, answer.text)
    assert client.post(url, json={"reason": "no such payment"}, headers=investor.headers).status_code == 403
    with session_factory() as session:
        assert session.get_one(Deposit, uuid.UUID(created["id"])).status == "pending"  # nothing decided yet

    rejected = client.post(url, json={"reason": "  no payment with this reference  "}, headers=operator.headers)
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["status"], rejected.json()["rejection_reason"]) == (
        "rejected",
        "no payment with this reference",
    )
    again = client.post(url, json={"reason": "another reason"}, headers=operator.headers)
    assert again.status_code == 200 and again.json()["rejection_reason"] == "no payment with this reference"

    with session_factory() as session:
        row = session.get_one(Deposit, uuid.UUID(created["id"]))
        assert (row.status, row.rejection_reason, str(row.decided_by)) == (
            "rejected",
            "no payment with this reference",
            operator.id,
        )
    shown = client.get(f"/v1/wallets/deposits/{created['id']}", headers=investor.headers).json()
    assert shown["rejection_reason"] == "no payment with this reference"
    assert [d["rejection_reason"] for d in client.get("/v1/wallets/me/deposits", headers=investor.headers).json()] == [
        "no payment with this reference"
    ]
    listed = client.get("/v1/operator/deposits?status=rejected", headers=operator.headers).json()
    assert [(d["id"], d["rejection_reason"]) for d in listed] == [(created["id"], "no payment with this reference")]
    assert client.get("/v1/wallets/me", headers=investor.headers).json()["balance"] == "0.00"

    # a confirmed deposit has no reason, and is not rejected afterwards
    confirmed = client.post("/v1/wallets/deposits", json={"amount": "10.00"}, headers=investor.headers).json()
    ok = client.post(f"/v1/operator/deposits/{confirmed['id']}/confirm", headers=operator.headers)
    assert ok.status_code == 200 and ok.json()["rejection_reason"] is None
    late = client.post(
        f"/v1/operator/deposits/{confirmed['id']}/reject", json={"reason": "too late"}, headers=operator.headers
    )
    assert late.status_code == 409


@pytest.mark.parametrize(
    "query", ["/v1/loans?product=stan%00dard", "/v1/loans?borrower=a%00@example.com", "/v1/register?q=loan%00"]
)
def test_text_with_a_nul_character_in_a_filter_is_refused_not_a_500(client, seeded, operator, query):
    assert client.get(query, headers=operator.headers).status_code == 422


@pytest.mark.parametrize("path", ["/v1/operator/reviews", "/v1/register", "/v1/operator/ledger/reserve-fund"])
def test_the_back_office_reads_need_a_token(client, path):
    assert client.get(path).status_code == 401
