"""The secondary market end to end, on the real Temporal dev server through the API: a
holding is sold in two parts to two buyers mid-life, the loan then repays, and every party's
money is exact to the kopek; two buyers race for one listing: one trade, one 409."""

from __future__ import annotations

import asyncio
import io
import uuid
from decimal import Decimal

import httpx
import pypdf
from sqlalchemy import select

from api.main import create_app
from compliance.audit import loan_records, verify_chain
from core.db import unit_of_work
from documents.assignments import ASSIGNMENT_AGREEMENT
from documents.render import _money
from documents.store import DocumentStore
from ledger.accounts import platform_account
from models.loans import Investment, InvestmentInstallment
from models.market import MarketListing, MarketTrade
from models.records import Document
from products.service import change_product, current_product, terms_of
from tests.ledger_helpers import assert_books_balance
from tests.loan_helpers import (
    balance_of,
    give_money,
    make_borrower,
    make_investor,
    replay_and_maybe_record,
    running_worker,
    wait_for_agreements,
)
from tests.test_loan_api import bearer, fund_through_the_api, wait_loan_status

D = Decimal
MONTH_PER_10_SECONDS = 30 * 24 * 3600 // 10


def _tradeable_at_once(session_factory) -> None:
    """The product lets a holding be listed the day it is bought (the test cannot wait 30 days)."""
    with unit_of_work(session_factory) as session:
        terms = terms_of(current_product(session, "standard"))
        change_product(session, "standard", terms.model_copy(update={"market_min_holding_days": 0}))


def _holding(session_factory, loan_id: str, investor: uuid.UUID) -> Investment:
    with session_factory() as session:
        return session.scalars(
            select(Investment).where(Investment.loan_id == uuid.UUID(loan_id), Investment.investor_id == investor)
        ).one()


def _rows(session_factory, investment_id: uuid.UUID) -> list[InvestmentInstallment]:
    with session_factory() as session:
        return list(
            session.scalars(
                select(InvestmentInstallment)
                .where(InvestmentInstallment.investment_id == investment_id)
                .order_by(InvestmentInstallment.payment_num)
            )
        )


def _fees_balance(session_factory) -> Decimal:
    with session_factory() as session:
        return platform_account(session, "platform_fees").balance


async def _wait_paid(api: httpx.AsyncClient, loan_id: str, headers, installments: int, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        rows = (await api.get(f"/v1/loans/{loan_id}/schedule", headers=headers)).json()
        if sum(1 for r in rows if r["status"] == "paid") >= installments:
            return
        assert loop.time() < deadline, rows
        await asyncio.sleep(0.1)


async def test_a_holding_sold_in_two_parts_mid_life_then_repaid_pays_everyone_exactly(
    live_settings, dev_client, session_factory, seeded, task_queue
):
    settings = live_settings.model_copy(update={"LOAN_TIME_SCALE": MONTH_PER_10_SECONDS})
    _tradeable_at_once(session_factory)
    borrower = make_borrower(session_factory)
    seller, other = make_investor(session_factory, "25000"), make_investor(session_factory, "25000")
    buyer_c, buyer_d = make_investor(session_factory, "15000"), make_investor(session_factory, "15000")
    fees_before = _fees_balance(session_factory)
    app = create_app(settings)
    async with (
        running_worker(dev_client, settings, session_factory, task_queue),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api,
    ):
        mine = bearer(settings, borrower, "borrower")
        loan_id = await fund_through_the_api(api, settings, borrower, [seller, other])
        give_money(session_factory, borrower, "10000")
        await wait_loan_status(api, loan_id, mine, "active")
        await _wait_paid(api, loan_id, mine, 1)  # mid-life: the first installment is paid
        await wait_for_agreements(dev_client, loan_id)  # (a trade waits for them)
        sold_holding = _holding(session_factory, loan_id, seller)
        fees_after_disbursement = _fees_balance(session_factory)

        # The seller lists 18,000.00 of the holding (about 21,000 is still owed to it) at 101.50 %.
        listed = await api.post(
            "/v1/market/listings",
            json={"investment_id": str(sold_holding.id), "principal": "18000.00", "price_percent": "101.50"},
            headers=bearer(settings, seller, "investor") | {"Idempotency-Key": "list-1"},
        )
        assert listed.status_code == 201, listed.text
        listing_id = listed.json()["id"]
        market = (await api.get("/v1/market/listings", headers=bearer(settings, buyer_c, "investor"))).json()
        (offer,) = [m for m in market if m["id"] == listing_id]
        assert offer["price"] == "18270.00" and offer["investment_id"] is None and offer["mine"] is False
        assert D(offer["accrued_interest"]) >= 0 and offer["yield_to_maturity_percent"] is not None
        own = await api.post(
            f"/v1/market/listings/{listing_id}/purchase", json={}, headers=bearer(settings, seller, "investor")
        )
        assert own.status_code == 409 and "own listing" in own.json()["detail"]

        # Two buyers: 12,000.00, then the 6,000.00 left.
        first = await api.post(
            f"/v1/market/listings/{listing_id}/purchase",
            json={"principal": "12000.00"},
            headers=bearer(settings, buyer_c, "investor") | {"Idempotency-Key": "buy-c"},
        )
        assert first.status_code == 201, first.text
        assert first.json()["listing_remaining"] == "6000.00"
        again = await api.post(
            f"/v1/market/listings/{listing_id}/purchase",
            json={"principal": "12000.00"},
            headers=bearer(settings, buyer_c, "investor") | {"Idempotency-Key": "buy-c"},
        )
        assert again.status_code == 201 and again.json()["id"] == first.json()["id"]  # the same trade, once
        second = await api.post(
            f"/v1/market/listings/{listing_id}/purchase",
            json={},
            headers=bearer(settings, buyer_d, "investor") | {"Idempotency-Key": "buy-d"},
        )
        assert second.status_code == 201, second.text
        assert second.json()["principal"] == "6000.00" and second.json()["listing_remaining"] == "0.00"

        # Two buyers race for all of another listing: one trade, one 409.
        other_holding = _holding(session_factory, loan_id, other)
        raced = await api.post(
            "/v1/market/listings",
            json={"investment_id": str(other_holding.id), "principal": "10000.00", "price_percent": "99.00"},
            headers=bearer(settings, other, "investor"),
        )
        assert raced.status_code == 201, raced.text
        give_money(session_factory, buyer_c, "11000")
        give_money(session_factory, buyer_d, "11000")
        racers = [buyer_c, buyer_d]
        answers = await asyncio.gather(
            *(
                api.post(
                    f"/v1/market/listings/{raced.json()['id']}/purchase",
                    json={},
                    headers=bearer(settings, racer, "investor") | {"Idempotency-Key": f"race-{racer}"},
                )
                for racer in racers
            )
        )
        assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
        loser = racers[[a.status_code for a in answers].index(409)]
        assert "sold" in answers[[a.status_code for a in answers].index(409)].json()["detail"]

        final = await wait_loan_status(api, loan_id, mine, "repaid", "defaulted", timeout=180)
        assert final["status"] == "repaid"
        handle = dev_client.get_workflow_handle(f"loan-{loan_id}")
        await handle.result()

    with session_factory() as session:
        trades = list(session.scalars(select(MarketTrade).where(MarketTrade.loan_id == uuid.UUID(loan_id))))
        assert len(trades) == 3
        listings = {li.id: li for li in session.scalars(select(MarketListing))}
        assert {li.status for li in listings.values()} == {"sold"}
        holdings = list(session.scalars(select(Investment).where(Investment.loan_id == uuid.UUID(loan_id))))
        # Every holding received exactly what its agreed parts said, every installment.
        for holding in holdings:
            for row in _rows(session_factory, holding.id):
                assert (row.received_principal, row.received_interest) == (row.principal, row.interest), row
        principal_of = {h.id: sum((r.principal for r in _rows(session_factory, h.id)), D(0)) for h in holdings}
        # The claims add up to the loan, and each buyer holds exactly what it bought.
        assert sum(principal_of.values()) == D("50000.00")
        for trade in trades:
            assert principal_of[trade.buyer_investment_id] == trade.principal
        assert principal_of[sold_holding.id] == D("25000.00") - D("18000.00")  # it kept 7,000.00 of its claim
        # Each party's wallet: what it had, less what it paid, plus what it received.
        received: dict[uuid.UUID, Decimal] = {}
        for h in holdings:  # (a buyer may hold two parts of the loan)
            received[h.investor_id] = received.get(h.investor_id, D(0)) + sum(
                (r.received_principal + r.received_interest + r.received_fee for r in _rows(session_factory, h.id)),
                D(0),
            )
        paid_by = {c: sum((t.buyer_pays for t in trades if t.buyer_id == c), D(0)) for c in (buyer_c, buyer_d)}
        got_by = {s: sum((t.seller_gets for t in trades if t.seller_id == s), D(0)) for s in (seller, other)}
        assert balance_of(session_factory, seller).balance == got_by[seller] + received[seller]
        assert balance_of(session_factory, other).balance == got_by[other] + received[other]
        for buyer in (buyer_c, buyer_d):
            assert balance_of(session_factory, buyer).balance == D("26000.00") - paid_by[buyer] + received.get(
                buyer, D(0)
            )
        assert not [t for t in trades if t.buyer_id == loser and t.listing_id == uuid.UUID(raced.json()["id"])]
        # The platform's fees: the disbursement's, then exactly the trades' fees.
        assert _fees_balance(session_factory) - fees_after_disbursement == sum((t.fee for t in trades), D(0))
        assert fees_after_disbursement >= fees_before
        # Two assignment agreements per trade, one for each party, in the register.
        documents = list(
            session.scalars(
                select(Document).where(Document.loan_id == uuid.UUID(loan_id), Document.kind == ASSIGNMENT_AGREEMENT)
            )
        )
        assert sorted((d.subject_key, d.owner_id) for d in documents) == sorted(
            [(f"trade:{t.id}:seller", t.seller_id) for t in trades]
            + [(f"trade:{t.id}:buyer", t.buyer_id) for t in trades]
        )
        # The trail: the listings, each trade with its posting, and the chain intact.
        records = loan_records(session, uuid.UUID(loan_id))
        actions = [r.action for r in records]
        assert actions.count("market.listed") == 2 and actions.count("market.traded") == 3
        assert all(r.details.get("ledger_transaction_id") for r in records if r.action == "market.traded")
        assert verify_chain(records).intact
        assert_books_balance(session)
        # What each buyer received is what its copy of the agreement says it buys.
        store = DocumentStore(settings.documents_dir)
        for trade in trades:
            (copy,) = [d for d in documents if d.subject_key == f"trade:{trade.id}:buyer"]
            text = " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(store.read(copy.sha256))).pages)
            bought = [r for r in _rows(session_factory, trade.buyer_investment_id)]
            total = sum((r.received_principal + r.received_interest for r in bought), D(0))
            assert _money(total) in " ".join(text.split()), (total, text[-800:])
    # saved (RECORD_HISTORIES) only once the test's own checks have passed
    await replay_and_maybe_record(handle, "loan_with_market_trades")


async def test_trades_past_a_runs_budget_continue_the_loan_as_new_and_it_repays_exactly(
    live_settings, dev_client, session_factory, seeded, task_queue
):
    """A repaying loan's run ends once it has taken its budget of updates (here 2), not only at
    a due date: two trades, and the loan continues as new; a third trade goes to the new run.
    The loan then repays, every holding paid exactly its parts. Its history is saved
    (RECORD_HISTORIES): it holds the `repaying-run-full` patch."""
    from api.routers.market import platform_today
    from api.workflow_calls import execute_loan_update
    from investing.market import create_listing
    from models.loan_workflow import LoanSnapshot, TradeRequest
    from models.users import User
    from tests.loan_helpers import invest, start_loan, wait_for_status, wait_read_side_status
    from workflows.loan import LoanWorkflow

    _tradeable_at_once(session_factory)
    borrower = make_borrower(session_factory)
    seller, other = make_investor(session_factory, "10000"), make_investor(session_factory, "10000")
    buyers = [make_investor(session_factory, "5000") for _ in range(3)]
    async with running_worker(dev_client, live_settings, session_factory, task_queue):
        loan = await start_loan(
            dev_client,
            session_factory,
            task_queue,
            borrower,
            "20000.00",
            6,
            time_scale=MONTH_PER_10_SECONDS,
            updates_per_run=2,
        )
        await wait_for_status(loan.handle, "funding", timeout=60)
        await invest(loan.handle, seller, "10000.00")
        await invest(loan.handle, other, "10000.00")
        give_money(session_factory, borrower, "5000")
        latest = dev_client.get_workflow_handle(loan.handle.id, result_type=LoanSnapshot)
        await wait_for_status(latest, "active", timeout=60)
        # (the two investments were the funding phase's budget; the repaying phase has its own)
        loop = asyncio.get_running_loop()
        await wait_read_side_status(session_factory, loan.loan_id, "active")  # (what the market reads)
        await wait_for_agreements(dev_client, loan.loan_id)  # (a trade waits for them)
        holding = _holding(session_factory, str(loan.loan_id), seller)
        with unit_of_work(session_factory) as session:
            listing, _ = create_listing(
                session,
                session.get_one(User, seller),
                holding.id,
                D("6000.00"),
                D("100.00"),
                None,
                platform_today(live_settings),  # (the platform's day: after 21:00 UTC, Moscow's tomorrow)
            )

        async def buy(buyer: uuid.UUID, principal: str):
            trade_id = uuid.uuid4()
            return await execute_loan_update(
                dev_client,
                loan.handle.id,
                LoanWorkflow.trade,
                TradeRequest(
                    trade_id=trade_id,
                    listing_id=listing.id,
                    buyer_id=buyer,
                    principal=D(principal),
                    loan_id=loan.loan_id,
                ),
                update_id=f"trade-{trade_id}",
            )

        await buy(buyers[0], "2000.00")
        run_of_the_trades = (await latest.describe()).run_id
        assert run_of_the_trades == loan.handle.first_execution_run_id
        await buy(buyers[1], "2000.00")
        # The run's budget is spent: the loan continues as new, well before its next due date.
        deadline = loop.time() + 30
        while (await latest.describe()).run_id == run_of_the_trades:
            assert loop.time() < deadline, "the run took its budget of updates and went on"
            await asyncio.sleep(0.1)
        third = await buy(buyers[2], "2000.00")
        assert third.listing_remaining == D("0.00")
        final = await asyncio.wait_for(latest.result(), 180)
        assert final.status == "repaid"

    with session_factory() as session:
        trades = list(session.scalars(select(MarketTrade).where(MarketTrade.loan_id == loan.loan_id)))
        assert sorted(t.buyer_id for t in trades) == sorted(buyers)
        holdings = list(session.scalars(select(Investment).where(Investment.loan_id == loan.loan_id)))
        for h in holdings:
            rows = _rows(session_factory, h.id)
            for row in rows:
                assert (row.received_principal, row.received_interest) == (row.principal, row.interest), row
        principal_of = {h.id: sum((r.principal for r in _rows(session_factory, h.id)), D(0)) for h in holdings}
        assert sum(principal_of.values()) == D("20000.00")
        assert principal_of[holding.id] == D("4000.00")
        for trade in trades:
            assert principal_of[trade.buyer_investment_id] == D("2000.00")
            received = sum(
                (r.received_principal + r.received_interest for r in _rows(session_factory, trade.buyer_investment_id)),
                D(0),
            )
            assert balance_of(session_factory, trade.buyer_id).balance == D("5000.00") - trade.buyer_pays + received
        assert_books_balance(session)
        assert verify_chain(loan_records(session, loan.loan_id)).intact
    # saved (RECORD_HISTORIES) only once the test's own checks have passed
    await replay_and_maybe_record(loan.handle, "loan_market_trades_continued_as_new")
