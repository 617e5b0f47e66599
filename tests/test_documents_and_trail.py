"""Agreements, statements and the compliance trail (issue: loan agreements, statements
and the compliance trail)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pypdf
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from api.main import create_app
from compliance.audit import append_audit, loan_records, verify_chain
from core.db import unit_of_work
from core.errors import InvalidRequest
from core.pseudonyms import pseudonym
from documents.render import _money
from documents.statements import generate_investor_statement, month_bounds
from documents.store import DocumentStore
from ledger.accounts import wallet_of_user
from ledger.wallets import wallet_balance, wallet_statement
from loans.requests import create_loan_request
from models.records import AuditRecord, Document
from models.users import User
from tests.ledger_helpers import assert_books_balance, new_user
from tests.loan_helpers import give_money, make_borrower, make_investor, running_worker
from tests.test_loan_api import bearer, wait_loan_status

D = Decimal


def pdf_text(content: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(content))
    # Collapse whitespace: table cells come back on separate lines.
    return re.sub(r"\s+", " ", " ".join(page.extract_text() for page in reader.pages))


@pytest.fixture
def live_settings(settings, temporal_dev_server, task_queue):
    return settings.model_copy(
        update={"TEMPORAL_ADDRESS": temporal_dev_server, "TASK_QUEUE": task_queue, "LOAN_TIME_SCALE": 2592000}
    )


EXPECTED_ORDER = [
    "loan.requested",
    "loan.status:scoring",
    "loan.status:approved",
    "loan.status:funding",
    "investment.placed",
    "investment.placed",
    "investment.placed",
    "loan.status:funded",
    "ledger.disbursement",
    "loan.disbursed",
    # (the agreements' four document.registered: after the payout, among the steps below,
    # as they render beside the repayment)
    # the sandbox clock may wake once for two due dates: one collection or more
    "ledger.installment_collection",
    "installment.collected",
    "loan.repaid",
]


def step_name(step: dict) -> str:
    return f"{step['action']}:{step['details']['to']}" if step["action"] == "loan.status" else step["action"]


async def test_a_loan_life_leaves_agreements_a_statement_and_a_trail_in_order(
    live_settings, dev_client, session_factory, seeded, task_queue
):
    settings = live_settings
    borrower, stranger = make_borrower(session_factory), make_borrower(session_factory)
    investors = [make_investor(session_factory, "100000") for _ in range(3)]
    with unit_of_work(session_factory) as session:
        compliance = new_user(session, "compliance").id
    app = create_app(settings)
    async with (
        running_worker(dev_client, settings, session_factory, task_queue),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api,
    ):
        mine, theirs = bearer(settings, borrower, "borrower"), bearer(settings, stranger, "borrower")
        auditor = bearer(settings, compliance, "compliance")
        created = await api.post(
            "/v1/loans", json={"amount": "100000.00", "term_months": 3, "purpose": "van"}, headers=mine
        )
        loan_id = created.json()["id"]
        await wait_loan_status(api, loan_id, mine, "funding")
        shares = dict(zip(investors, ("50000.00", "30000.00", "20000.00")))
        for investor, amount in shares.items():
            answer = await api.post(
                f"/v1/loans/{loan_id}/investments",
                json={"amount": amount},
                headers=bearer(settings, investor, "investor"),
            )
            assert answer.status_code == 201, answer.text
        give_money(session_factory, borrower, "20000")
        final = await wait_loan_status(api, loan_id, mine, "repaid", "defaulted", timeout=60)
        assert final["status"] == "repaid"
        # (the loan's life ends once its agreements, rendering beside the repayment, are registered)
        await asyncio.wait_for(dev_client.get_workflow_handle(f"loan-{loan_id}").result(), 60)
        schedule = (await api.get(f"/v1/loans/{loan_id}/schedule", headers=mine)).json()

        # -- the register: who sees which documents ----------------------------------------
        # The borrower knows the investors by pseudonym only (personal data by need to know).
        alias = {borrower: pseudonym("borrower", borrower, settings)}
        alias |= {investor: pseudonym("investor", investor, settings) for investor in investors}
        with session_factory() as session:
            emails = {u.id: u.email for u in session.scalars(select(User).where(User.id.in_(alias)))}
        documents = (await api.get(f"/v1/loans/{loan_id}/documents", headers=mine)).json()
        assert sorted(d["kind"] for d in documents) == ["borrower_agreement"] + ["investment_agreement"] * 3
        assert {(d["owner_id"], d["owner_pseudonym"]) for d in documents} == {(str(borrower), alias[borrower])} | {
            (None, alias[investor]) for investor in investors
        }
        staff_view = (await api.get(f"/v1/loans/{loan_id}/documents", headers=auditor)).json()
        assert {d["owner_id"] for d in staff_view} == {str(borrower)} | {str(i) for i in investors}
        first = bearer(settings, investors[0], "investor")
        own = (await api.get(f"/v1/loans/{loan_id}/documents", headers=first)).json()
        assert [d["owner_id"] for d in own] == [str(investors[0])]
        assert (await api.get(f"/v1/loans/{loan_id}/documents", headers=theirs)).status_code == 404
        others = [d for d in documents if d["owner_pseudonym"] not in (alias[investors[0]], alias[borrower])]
        assert (await api.get(others[0]["url"], headers=first)).status_code == 404
        for document in documents:
            assert (await api.get(document["url"], headers=theirs)).status_code == 404

        # -- each PDF: its figures are the loan's ----------------------------------------------
        by_owner = {d["owner_pseudonym"]: d for d in documents}
        contents = {}
        for document in documents:
            answer = await api.get(document["url"], headers=mine)
            assert answer.status_code == 200 and answer.headers["content-type"] == "application/pdf"
            assert hashlib.sha256(answer.content).hexdigest() == document["sha256"]
            contents[document["owner_pseudonym"]] = pdf_text(answer.content)
        borrower_pdf = contents[alias[borrower]]
        assert "97 000.00" in borrower_pdf  # paid to the borrower: 100,000 - 1% fee - 2% reserve fund
        for row in schedule:
            assert (
                f"{row['payment_num']} {row['due_date']} {_money(row['principal'])} {_money(row['interest'])}"
                in borrower_pdf
            )
        for investor, amount in shares.items():
            text_ = contents[alias[investor]]
            # both parties read it: each named by pseudonym, by neither email nor id
            assert f"Lender (investor) {alias[investor]} Borrower {alias[borrower]}" in text_
            unspaced = re.sub(r"\s+", "", text_)
            assert not [s for p in (investor, borrower) for s in (emails[p], str(p)) if s in unspaced]
            assert f"Amount lent by this investor {_money(amount)} RUB" in text_
            assert f"Annual interest rate {final['rate_annual']}%" in text_
            # the investor's share of the principal adds up to what they lent
            assert re.search(rf"Total {re.escape(_money(amount))} [\d ]+\.\d\d [\d ]+\.\d\d", text_), text_
        answer = await api.get(by_owner[alias[investors[1]]]["url"], headers=auditor)
        assert answer.status_code == 200

        # -- the trail ----------------------------------------------------------------------
        trail = (await api.get(f"/v1/loans/{loan_id}/trail", headers=auditor)).json()
        assert trail["chain"]["intact"] and trail["history_available"]
        names = [step_name(s) for s in trail["steps"]]
        position = 0
        for expected in EXPECTED_ORDER:  # every step, in this order (ledger steps in between)
            position = names.index(expected, position) + 1
        assert names.count("ledger.investment_reserve") == 3
        registered = [n for n, name in enumerate(names) if name == "document.registered"]
        assert len(registered) == 4 and min(registered) > names.index("loan.disbursed")
        collections = names.count("installment.collected")
        assert names.count("ledger.installment_collection") == collections >= 1
        collected = sum(D(s["details"]["collected"]) for s in trail["steps"] if s["action"] == "installment.collected")
        assert collected == sum(D(r["principal"]) + D(r["interest"]) + D(r["late_fee_paid"]) for r in schedule)
        placed = [s for s in trail["steps"] if s["action"] == "investment.placed"]
        assert {s["actor_id"] for s in placed} == {str(i) for i in investors}
        assert {s["actor_role"] for s in placed} == {"investor"}
        assert trail["steps"][0]["actor_id"] == str(borrower)
        for before, after in zip(trail["steps"], trail["steps"][1:]):
            assert after["prev_hash"] == before["record_hash"] and before["at"] <= after["at"]
            b, a = before["history"], after["history"]
            if b and a and b["run_id"] == a["run_id"]:
                assert b["scheduled_event_id"] <= a["scheduled_event_id"]
        for step in trail["steps"]:
            history = step["history"]
            assert history is not None, step  # every step of this loan was made by an activity
            assert history["scheduled_event_id"] < history["started_event_id"] < history["closed_event_id"]
        assert (await api.get(f"/v1/loans/{loan_id}/trail", headers=first)).status_code == 403
        assert (await api.get(f"/v1/loans/{loan_id}/trail", headers=theirs)).status_code == 404
        # the borrower's trail: the same steps, the investors by pseudonym (own id and email kept)
        borrowers_trail = (await api.get(f"/v1/loans/{loan_id}/trail", headers=mine)).json()
        assert [step_name(s) for s in borrowers_trail["steps"]] == [step_name(s) for s in trail["steps"]]
        placed = [s for s in borrowers_trail["steps"] if s["action"] == "investment.placed"]
        assert {(s["actor_id"], s["actor_email"], s["actor_pseudonym"]) for s in placed} == {
            (None, None, alias[i]) for i in investors
        }
        assert {s["details"]["investor_id"] for s in placed} == {alias[i] for i in investors}
        first_step = borrowers_trail["steps"][0]
        assert (first_step["actor_id"], first_step["actor_email"]) == (str(borrower), emails[borrower])
        shown = json.dumps(borrowers_trail)
        assert not [s for i in investors for s in (emails[i], str(i)) if s in shown]
        for method in ("post", "put", "delete"):
            assert (await api.request(method, f"/v1/loans/{loan_id}/trail", headers=auditor)).status_code == 405

        regulator = await api.get(f"/v1/loans/{loan_id}/trail.pdf", headers=auditor)
        assert regulator.status_code == 200
        regulator_text = pdf_text(regulator.content)
        assert "loan.repaid" in regulator_text and "intact" in regulator_text
        assert f"Records {len(trail['steps'])}" in regulator_text

        verified = (await api.get(f"/v1/loans/{loan_id}/trail/verify", headers=auditor)).json()
        assert verified["intact"] and len(verified["documents"]) == 4
        assert verified["chain"]["head_hash"] == trail["steps"][-1]["record_hash"]

    # -- regenerating the agreements: the same records, the same bytes ----------------------
    from activities.documents import DocumentActivities
    from models.documents_io import LoanAgreementsInput

    store = DocumentStore(settings.documents_dir)
    again = DocumentActivities(session_factory, store, settings).generate_loan_agreements(
        LoanAgreementsInput(loan_id=uuid.UUID(loan_id))
    )
    assert again.documents == 4
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Document)) == 4
        records = loan_records(session, uuid.UUID(loan_id))
        assert len(records) == len(trail["steps"])  # nothing written twice
    from documents.agreements import _loan_facts, investment_agreement_context, investment_shares
    from documents.render import render_pdf
    from models.loans import Investment

    with session_factory() as session:
        facts = _loan_facts(session, uuid.UUID(loan_id))
        investment = facts.investments[0]
        stored = session.scalars(select(Document).where(Document.subject_key == f"investment:{investment.id}")).one()
        rendered = render_pdf(
            "investment_agreement.html",
            investment_agreement_context(
                facts,
                investment,
                session.get_one(User, investment.investor_id),
                investment_shares(session, facts)[investment.id],
                settings,
            ),
        )
        assert pdf_text(rendered) == pdf_text(store.read(stored.sha256))
        assert hashlib.sha256(rendered).hexdigest() == stored.sha256
        assert isinstance(investment, Investment)

    # -- the month's statement of an investor -------------------------------------------------
    # The month not yet over is refused: `now` is the one instant both the month and the
    # check come from, so this holds at 23:59:59 on a month's last day too.
    now = datetime.now(UTC)
    with unit_of_work(session_factory) as session:
        with pytest.raises(InvalidRequest, match="has not ended yet"):
            generate_investor_statement(session, store, settings, investors[0], now.strftime("%Y-%m"), now=now)
    # A statement holds what the ledger dated inside its month: the months are those of the
    # investor's own ledger lines (one, unless the loan ran across a month's end), each
    # statemented as of the first instant after it.
    with session_factory() as session:
        lines = wallet_statement(session, wallet_of_user(session, investors[0]).id, limit=1000)
    months = sorted({line.created_at.astimezone(UTC).strftime("%Y-%m") for line in lines})
    assert 1 <= len(months) <= 2, months
    statements = []
    for month in months:
        _, month_end = month_bounds(month)
        with unit_of_work(session_factory) as session:
            document = generate_investor_statement(
                session, store, settings, investors[0], month, now=month_end + timedelta(seconds=1)
            )
        statements.append(pdf_text(store.read(document.sha256)))
    with session_factory() as session:
        balance = wallet_balance(session, wallet_of_user(session, investors[0]).id)
    for month, statement in zip(months, statements):
        assert f"Investor statement for {month}" in statement
        assert "investment reserve 1 -50 000.00" not in statement  # a reservation moves no balance
    openings = [re.search(r"Opening balance ([\d ]+\.\d\d) RUB", text_).group(1) for text_ in statements]
    closings = [re.search(r"Closing balance ([\d ]+\.\d\d) RUB", text_).group(1) for text_ in statements]
    assert (openings[0], closings[-1]) == ("0.00", _money(balance.balance))
    assert openings[1:] == closings[:-1]  # a month opens where the one before it closed
    assert balance.balance > D("100000.00")  # lent 50,000 and got it back with interest
    assert sum(statement.count("installment collected and distributed") for statement in statements) == collections
    with session_factory() as session:
        assert_books_balance(session)
    app.state.render_pool.shutdown()  # (no lifespan here: the trail.pdf's render process ends now)


def _loan_with_records(session_factory, count: int) -> uuid.UUID:
    borrower = make_borrower(session_factory)
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
        for n in range(count):
            append_audit(
                session, loan.id, f"step:{n}", "test.step", details={"n": n, "amount": D("10.50")}, note=f"step {n}"
            )
        return loan.id


def _tamper(session_factory, sql: str, **params) -> None:
    """What someone with the database owner's rights could do: switch the guard off."""
    with unit_of_work(session_factory) as session:
        session.execute(text("ALTER TABLE audit_log DISABLE TRIGGER trg_audit_log_append_only"))
        session.execute(text(sql), params)
        session.execute(text("ALTER TABLE audit_log ENABLE TRIGGER trg_audit_log_append_only"))


def test_an_altered_audit_record_is_found_by_verify(session_factory, seeded, client, compliance):
    loan_id = _loan_with_records(session_factory, 5)
    with session_factory() as session:
        records = loan_records(session, loan_id)
        assert verify_chain(records).intact and verify_chain(records).head_hash == records[-1].record_hash
    target = records[2]
    _tamper(
        session_factory,
        "UPDATE audit_log SET details = jsonb_set(details, '{amount}', '\"1000.50\"') WHERE id = :id",
        id=target.id,
    )
    answer = client.get(f"/v1/loans/{loan_id}/trail/verify", headers=compliance.headers)
    assert answer.status_code == 200
    body = answer.json()
    assert body["intact"] is False and body["chain"]["first_broken_id"] == target.id
    assert "content does not match" in body["chain"]["problem"]


def test_a_removed_or_rehashed_record_breaks_the_link_after_it(session_factory, seeded):
    loan_id = _loan_with_records(session_factory, 4)
    with session_factory() as session:
        records = loan_records(session, loan_id)
    _tamper(session_factory, "DELETE FROM audit_log WHERE id = :id", id=records[1].id)
    with session_factory() as session:
        check = verify_chain(loan_records(session, loan_id))
    assert not check.intact and check.first_broken_id == records[2].id and "link" in check.problem

    other = _loan_with_records(session_factory, 3)
    with session_factory() as session:
        records = loan_records(session, other)
    # a forger who rewrites a record and its own hash still breaks the next record's link
    _tamper(
        session_factory,
        "UPDATE audit_log SET note = 'forged', record_hash = :h WHERE id = :id",
        id=records[0].id,
        h="0" * 64,
    )
    with session_factory() as session:
        check = verify_chain(loan_records(session, other))
    assert not check.intact and check.first_broken_id == records[0].id


def test_nobody_can_change_the_trail_or_the_register(session_factory, seeded):
    loan_id = _loan_with_records(session_factory, 2)
    with unit_of_work(session_factory) as session:
        session.execute(
            text(
                "INSERT INTO documents (kind, subject_key, loan_id, sha256, size_bytes) "
                "VALUES ('x', 'y', :loan, repeat('a', 64), 1)"
            ),
            {"loan": loan_id},
        )
    for sql in (
        "UPDATE audit_log SET note = 'x' WHERE loan_id = :loan",
        "DELETE FROM audit_log WHERE loan_id = :loan",
        "UPDATE documents SET sha256 = repeat('b', 64) WHERE loan_id = :loan",
        "DELETE FROM documents WHERE loan_id = :loan",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            with unit_of_work(session_factory) as session:
                session.execute(text(sql), {"loan": loan_id})


def test_the_same_event_is_recorded_once_and_the_chain_never_forks(session_factory, seeded):
    loan_id = _loan_with_records(session_factory, 1)
    with unit_of_work(session_factory) as session:
        first = append_audit(session, loan_id, "retried", "test.retried")
    with unit_of_work(session_factory) as session:
        second = append_audit(session, loan_id, "retried", "test.retried")
    assert first.id == second.id
    with session_factory() as session:
        records = loan_records(session, loan_id)
    assert len(records) == 2
    # two records claiming the same predecessor: refused by the database
    with pytest.raises(DBAPIError):
        with unit_of_work(session_factory) as session:
            session.add(
                AuditRecord(
                    loan_id=loan_id,
                    event_key="fork",
                    actor_role="system",
                    action="test.fork",
                    details={},
                    prev_hash=records[0].record_hash,
                    record_hash="f" * 64,
                )
            )


async def test_concurrent_appends_to_one_loan_make_one_chain(session_factory, seeded):
    loan_id = _loan_with_records(session_factory, 1)

    def append(n: int) -> None:
        with unit_of_work(session_factory) as session:
            append_audit(session, loan_id, f"concurrent:{n}", "test.concurrent")

    await asyncio.gather(*(asyncio.to_thread(append, n) for n in range(16)))
    with session_factory() as session:
        check = verify_chain(loan_records(session, loan_id))
    assert check.intact and check.records == 17


def test_documents_store_is_content_addressed(tmp_path):
    store = DocumentStore(tmp_path)
    digest = store.put(b"%PDF-1.7 agreement")
    assert digest == hashlib.sha256(b"%PDF-1.7 agreement").hexdigest()
    assert store.put(b"%PDF-1.7 agreement") == digest and store.read(digest) == b"%PDF-1.7 agreement"
    store.path_of(digest).write_bytes(b"changed")
    assert not store.intact(digest)
    store.put(b"%PDF-1.7 agreement")  # a regeneration repairs a damaged file
    assert store.intact(digest)


def test_a_kept_font_configuration_renders_the_same_bytes_as_a_fresh_one():
    """A rendering thread keeps WeasyPrint's font configuration between documents: an
    agreement rendered after documents of other kinds equals one rendered with a fresh
    configuration, byte for byte (a regenerated agreement must keep its sha256)."""
    from weasyprint import HTML
    from weasyprint.text.fonts import FontConfiguration

    from documents import render
    from documents.render import TEMPLATES, _render_here, render_html

    # (what other templates leave in the kept configuration must not change the agreement)
    _render_here("loan_trail.html", trail_context())
    _render_here("investment_agreement.html", agreement_context())
    config = render._fonts.config
    kept = _render_here("investment_agreement.html", agreement_context())
    assert render._fonts.config is config
    alone = HTML(
        string=render_html("investment_agreement.html", agreement_context()), base_url=str(TEMPLATES)
    ).write_pdf(font_config=FontConfiguration())
    assert kept == alone


def trail_context() -> dict:
    step = {
        "seq": 1,
        "at": "2026-11-25 10:00",
        "actor_role": "system",
        "actor_pseudonym": None,
        "actor_email": None,
        "action": "loan.requested",
        "note": "asked for 100 000.00 RUB — «трактор»",
        "record_hash": "ab" * 32,
        "history": None,
    }
    return {
        "platform": {"name": "Crowdlending", "details": "licence 1"},
        "generated_at": "2026-11-25 10:00",
        "loan": {
            "id": uuid.UUID(int=1),
            "status": "funding",
            "amount": D("100000.00"),
            "currency": "RUB",
            "term_months": 12,
            "workflow_id": "loan-1",
        },
        "check": {"intact": True, "head_hash": "cd" * 32},
        "steps": [step],
    }


def agreement_context() -> dict:
    return {
        "agreement_number": "ABCDEF12-12345678",
        "platform": {"name": "Crowdlending", "details": "licence 1"},
        "generated_at": "2026-11-25 10:00",
        "loan": {
            "id": uuid.UUID(int=1),
            "amount": D("100000.00"),
            "currency": "RUB",
            "rate_annual": D("17"),
            "term_months": 12,
            "asset": None,
            "risk_grade": "B",
            "disbursed_on": "2026-11-25",
        },
        "terms": {"late_fee_percent_per_day": D("0.1"), "late_fee_grace_days": 3, "default_after_days_overdue": 90},
        "investor": {"pseudonym": "investor-1"},
        "borrower": {"pseudonym": "borrower-1"},
        "investment": {"id": uuid.UUID(int=2), "amount": D("5000.00")},
        "share_percent": "5",
        "schedule": [
            {
                "payment_num": n,
                "due_date": f"2027-{n:02d}-25",
                "principal": D("380.12"),
                "interest": D("70.83"),
                "total": D("450.95"),
            }
            for n in range(1, 13)
        ],
        "totals": {"principal": D("5000.00"), "interest": D("411.40"), "total": D("5411.40")},
    }


async def test_statements_workflow_runs_for_an_ended_month_and_refuses_the_current_one(
    live_settings, dev_client, session_factory, seeded, task_queue
):
    from temporalio.client import WorkflowFailureError

    from models.documents_io import InvestorStatementsInput, StatementsResult
    from workflows.investor_statements import InvestorStatementsWorkflow

    def month_before(day) -> str:
        return (day.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")

    make_investor(session_factory, "1000")
    async with running_worker(dev_client, live_settings, session_factory, task_queue):
        # the Schedule's run: no month given, so the month before the workflow's today; nobody
        # had money then
        before = datetime.now(UTC)
        result: StatementsResult = await dev_client.execute_workflow(
            InvestorStatementsWorkflow.run,
            InvestorStatementsInput(),
            id=f"statements-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        after = datetime.now(UTC)
        # the workflow read its clock between `before` and `after` (one month, unless a month
        # ended in between)
        assert result.statements == 0
        assert month_before(before.date()) <= result.month <= month_before(after.date()), (before, after, result)
        # The current month, which the activity refuses as not ended. Taken a minute ahead: run in
        # a month's last minute, that is the next month, not ended either when the activity looks.
        current = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m")
        with pytest.raises(WorkflowFailureError) as failure:
            await dev_client.execute_workflow(
                InvestorStatementsWorkflow.run,
                InvestorStatementsInput(month=current),
                id=f"statements-{uuid.uuid4()}",
                task_queue=task_queue,
            )
    assert "has not ended yet" in str(failure.value.cause.cause)
