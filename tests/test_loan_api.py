"""The loan API against the real Temporal dev server: a funding rush, answers 201/409/422."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import httpx
from sqlalchemy import func, select

from api.main import create_app
from core.security import issue_access_token
from models.loans import Investment, LoanRequest
from tests.ledger_helpers import assert_books_balance
from tests.loan_helpers import balance_of, make_borrower, make_investor, replay_and_maybe_record, running_worker

D = Decimal


def bearer(settings, user_id, role: str) -> dict[str, str]:
    token, _ = issue_access_token(settings, user_id, role, 0)
    return {"Authorization": f"Bearer {token}"}


async def wait_loan_status(api: httpx.AsyncClient, loan_id: str, headers, *statuses: str, timeout: float = 30):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        body = (await api.get(f"/v1/loans/{loan_id}", headers=headers)).json()
        if body["status"] in statuses:
            return body
        assert loop.time() < deadline, body
        await asyncio.sleep(0.1)


async def fund_through_the_api(api: httpx.AsyncClient, settings, borrower, investors) -> str:
    """The borrower asks for 50,000 over 6 months; each of two investors funds 25,000."""
    headers = bearer(settings, borrower, "borrower")
    created = await api.post(
        "/v1/loans", json={"amount": "50000.00", "term_months": 6, "purpose": "x"}, headers=headers
    )
    loan_id = created.json()["id"]
    await wait_loan_status(api, loan_id, headers, "funding")
    for investor in investors:
        answer = await api.post(
            f"/v1/loans/{loan_id}/investments",
            json={"amount": "25000.00"},
            headers=bearer(settings, investor, "investor"),
        )
        assert answer.status_code == 201, answer.text
    return loan_id


async def test_funding_rush_never_overfunds_and_always_answers(
    live_settings, dev_client, session_factory, seeded, task_queue
):
    settings = live_settings
    borrower = make_borrower(session_factory)
    investors = [make_investor(session_factory, "10000") for _ in range(50)]
    poor = make_investor(session_factory, "0")
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        running_worker(dev_client, settings, session_factory, task_queue),
        httpx.AsyncClient(transport=transport, base_url="http://api") as api,
    ):
        borrower_headers = bearer(settings, borrower, "borrower")
        created = await api.post(
            "/v1/loans", json={"amount": "100000.00", "term_months": 12, "purpose": "tractor"}, headers=borrower_headers
        )
        assert created.status_code == 201, created.text
        loan_id = created.json()["id"]
        assert created.json()["workflow_id"] == f"loan-{loan_id}"
        await wait_loan_status(api, loan_id, borrower_headers, "funding")

        too_small = await api.post(
            f"/v1/loans/{loan_id}/investments",
            json={"amount": "999.99"},
            headers=bearer(settings, investors[0], "investor"),
        )
        assert too_small.status_code == 422 and "minimum investment" in too_small.json()["detail"]
        broke = await api.post(
            f"/v1/loans/{loan_id}/investments", json={"amount": "1000.00"}, headers=bearer(settings, poor, "investor")
        )
        assert broke.status_code == 409 and broke.json()["type"].endswith("insufficient-funds")

        async def attempt(investor):
            return await api.post(
                f"/v1/loans/{loan_id}/investments",
                json={"amount": "5000.00"},
                headers=bearer(settings, investor, "investor"),
            )

        answers = await asyncio.gather(*(attempt(i) for i in investors))
        codes = [a.status_code for a in answers]
        assert codes.count(201) == 20 and codes.count(409) == 30, codes
        assert all(a.json()["type"].endswith("conflict") for a in answers if a.status_code == 409)
        funded = await wait_loan_status(api, loan_id, borrower_headers, "active")
        assert funded["funded_amount"] == "100000.00"
        winners = [i for i, a in zip(investors, answers) if a.status_code == 201]
        losers = [i for i, a in zip(investors, answers) if a.status_code == 409]
        assert (await attempt(winners[0])).status_code == 409  # an investor in it: the loan has moved on
        assert (await attempt(losers[0])).status_code == 404  # nobody else even sees a loan past funding
        schedule = (await api.get(f"/v1/loans/{loan_id}/schedule", headers=borrower_headers)).json()
        assert len(schedule) == 12 and sum(D(r["principal"]) for r in schedule) == D("100000.00")
        # the handle ends here; the loan stays active on the dev server (its first due date is a month away)
        await dev_client.get_workflow_handle(f"loan-{loan_id}").terminate("test over")
    with session_factory() as session:
        assert session.scalar(select(func.sum(Investment.amount)).where(Investment.loan_id == uuid.UUID(loan_id))) == D(
            "100000.00"
        )
        assert session.get(LoanRequest, uuid.UUID(loan_id)).funded_amount == D("100000.00")
        assert_books_balance(session)
    assert all(balance_of(session_factory, i).balance == D("5000.00") for i in winners)
    assert balance_of(session_factory, borrower).available == D("97000.00")


async def test_loan_requests_reads_and_authorization(live_settings, dev_client, session_factory, seeded, task_queue):
    settings = live_settings
    borrower = make_borrower(session_factory)
    other_borrower = make_borrower(session_factory)
    investor = make_investor(session_factory, "60000")
    app = create_app(settings)
    async with (
        running_worker(dev_client, settings, session_factory, task_queue),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api,
    ):
        mine, theirs = bearer(settings, borrower, "borrower"), bearer(settings, other_borrower, "borrower")
        investor_headers = bearer(settings, investor, "investor")
        # bad requests: 422 with the reason, nothing created
        out_of_range = await api.post(
            "/v1/loans", json={"amount": "5000.00", "term_months": 12, "purpose": "x"}, headers=mine
        )
        assert out_of_range.status_code == 422 and "10000.00 to 5000000.00" in out_of_range.json()["detail"]
        assert (
            await api.post("/v1/loans", json={"amount": "50000", "term_months": 12.5, "purpose": "x"}, headers=mine)
        ).status_code == 422
        assert (
            await api.post(
                "/v1/loans", json={"amount": "50000", "term_months": 12, "purpose": "x"}, headers=investor_headers
            )
        ).status_code == 403
        # idempotent request
        key = {"Idempotency-Key": "my-first-loan"}
        first = await api.post(
            "/v1/loans", json={"amount": "50000.00", "term_months": 6, "purpose": "roof"}, headers={**mine, **key}
        )
        again = await api.post(
            "/v1/loans", json={"amount": "50000.00", "term_months": 6, "purpose": "roof"}, headers={**mine, **key}
        )
        assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
        other = await api.post(
            "/v1/loans", json={"amount": "60000.00", "term_months": 6, "purpose": "roof"}, headers={**mine, **key}
        )
        assert other.status_code == 422
        loan_id = first.json()["id"]
        await wait_loan_status(api, loan_id, mine, "funding")
        # who reads what
        assert (await api.get(f"/v1/loans/{loan_id}", headers=theirs)).status_code == 404
        seen_by_investor = await api.get(f"/v1/loans/{loan_id}", headers=investor_headers)
        assert seen_by_investor.status_code == 200 and seen_by_investor.json()["purpose"] is None
        assert (await api.get(f"/v1/loans/{loan_id}", headers=mine)).json()["purpose"] == "roof"
        listed = (await api.get("/v1/loans?status=funding", headers=investor_headers)).json()
        assert [loan["id"] for loan in listed] == [loan_id]
        assert (await api.get("/v1/loans", headers=theirs)).json() == []
        assert (await api.get("/v1/loans?status=bogus", headers=mine)).status_code == 422
        # an investor may hold at most half of it
        over_share = await api.post(
            f"/v1/loans/{loan_id}/investments", json={"amount": "25000.01"}, headers=investor_headers
        )
        assert over_share.status_code == 422 and "at most 50%" in over_share.json()["detail"]
        ok = await api.post(
            f"/v1/loans/{loan_id}/investments",
            json={"amount": "25000.00"},
            headers={**investor_headers, "Idempotency-Key": "inv-1"},
        )
        replay = await api.post(
            f"/v1/loans/{loan_id}/investments",
            json={"amount": "25000.00"},
            headers={**investor_headers, "Idempotency-Key": "inv-1"},
        )
        assert ok.status_code == replay.status_code == 201 and ok.json()["id"] == replay.json()["id"]
        assert balance_of(session_factory, investor).reserved == D("25000.00")
        assert (await api.post(f"/v1/loans/{loan_id}/early-repayment", headers=mine)).status_code == 409
        await dev_client.get_workflow_handle(f"loan-{loan_id}").terminate("test over")


async def test_sandbox_clock_runs_a_year_of_repayments_in_seconds(
    live_settings, dev_client, session_factory, seeded, task_queue
):
    """LOAN_TIME_SCALE=2592000: a month of loan time per second on the real dev server; the
    schedule still shows real calendar dates."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from dateutil.relativedelta import relativedelta

    settings = live_settings.model_copy(update={"LOAN_TIME_SCALE": 2592000})
    borrower = make_borrower(session_factory)
    investors = [make_investor(session_factory, "30000") for _ in range(2)]
    app = create_app(settings)
    async with (
        running_worker(dev_client, settings, session_factory, task_queue),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api,
    ):
        headers = bearer(settings, borrower, "borrower")
        loan_id = await fund_through_the_api(api, settings, borrower, investors)
        from tests.loan_helpers import give_money

        give_money(session_factory, borrower, "10000")
        final = await wait_loan_status(api, loan_id, headers, "repaid", "defaulted", timeout=60)
        assert final["status"] == "repaid"
        schedule = (await api.get(f"/v1/loans/{loan_id}/schedule", headers=headers)).json()
        # started by the API as production starts loans: search attributes on
        handle = dev_client.get_workflow_handle(f"loan-{loan_id}")
        await handle.result()
    # (the loan's calendar is the platform's time zone: after 21:00 UTC, Moscow is a day ahead)
    disbursed = datetime.fromisoformat(final["disbursed_at"]).astimezone(ZoneInfo(settings.PLATFORM_TIME_ZONE)).date()
    assert [r["due_date"] for r in schedule] == [(disbursed + relativedelta(months=n)).isoformat() for n in range(1, 7)]
    assert {r["status"] for r in schedule} == {"paid"}
    with session_factory() as session:
        assert_books_balance(session)
    # saved (RECORD_HISTORIES) only once the test's own checks have passed
    await replay_and_maybe_record(handle, "loan_repaid_search_attributes")


async def test_the_read_side_never_runs_ahead_of_the_loan(
    live_settings, dev_client, session_factory, seeded, task_queue
):
    """The moment `GET /v1/loans/{id}` says active, the loan itself is active: an early
    repayment asked at once works (the workflow records "active" only after it set it)."""
    settings = live_settings
    borrower = make_borrower(session_factory)
    investors = [make_investor(session_factory, "30000") for _ in range(2)]
    app = create_app(settings)
    async with (
        running_worker(dev_client, settings, session_factory, task_queue),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api,
    ):
        mine = bearer(settings, borrower, "borrower")
        from tests.loan_helpers import give_money

        give_money(session_factory, borrower, "5000")  # with the 48,500 paid out: everything, at once
        loan_id = await fund_through_the_api(api, settings, borrower, investors)
        seen = []
        while (body := (await api.get(f"/v1/loans/{loan_id}", headers=mine)).json())["status"] != "active":
            seen.append(body["status"])
            assert len(seen) < 3000, seen
            await asyncio.sleep(0.01)
        early = await api.post(f"/v1/loans/{loan_id}/early-repayment", headers=mine)
        assert early.status_code == 200, (early.text, seen)
        assert D(early.json()["principal"]) == D("50000.00")
        assert (await wait_loan_status(api, loan_id, mine, "repaid"))["status"] == "repaid"
    with session_factory() as session:
        assert_books_balance(session)


async def test_operator_review_live_view_and_a_deposit_that_wakes_an_overdue_loan(
    live_settings, dev_client, session_factory, seeded, task_queue
):
    """Through the API on the sandbox clock: an operator approves a loan awaiting review, reads
    its live state; the borrower falls behind, and the deposit an operator confirms is
    collected at once (the confirm signals the loan), late fee included."""
    from datetime import UTC, date, datetime
    from decimal import ROUND_HALF_UP

    from core.db import unit_of_work
    from products.catalog import STANDARD
    from tests.ledger_helpers import new_user

    # A day of loan time a real second: the borrower's wallet is emptied some 30 s before the
    # first due date, and the overdue installment is collected some 25 s before the second
    # falls due, margins a loaded machine does not eat; the borrower then repays early, so
    # the test does not wait out the last two months.
    scale = 86400
    settings = live_settings.model_copy(update={"LOAN_TIME_SCALE": scale})
    grace_days = STANDARD.late_fee_grace_days  # 3, and 0.1% a day of the overdue amount after them
    assert (grace_days, STANDARD.late_fee_percent_per_day) == (3, D("0.100"))
    loop = asyncio.get_running_loop()
    with unit_of_work(session_factory) as session:
        operator = new_user(session, "operator").id
    borrower = make_borrower(session_factory)
    investors = [make_investor(session_factory, "20000") for _ in range(2)]
    app = create_app(settings)
    async with (
        running_worker(dev_client, settings, session_factory, task_queue),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api,
    ):
        ops, mine = bearer(settings, operator, "operator"), bearer(settings, borrower, "borrower")

        async def live_view() -> dict:
            answer = await api.get(f"/v1/operator/loans/{loan_id}/live", headers=ops)
            assert answer.status_code == 200, answer.text
            return answer.json()

        async def schedule_now() -> list[dict]:
            return (await api.get(f"/v1/loans/{loan_id}/schedule", headers=mine)).json()

        async def poll(read, done, what: str, timeout: float = 30.0):
            deadline = loop.time() + timeout
            while True:
                seen = await read()
                if done(seen):
                    return seen
                assert loop.time() < deadline, f"waited {timeout:.0f} s for {what}: {seen}"
                await asyncio.sleep(0.05)

        product = {**STANDARD.model_dump(mode="json"), "code": "reviewed", "requires_manual_approval": True}
        assert (await api.post("/v1/operator/products", json=product, headers=ops)).status_code == 201
        created = await api.post(
            "/v1/loans",
            json={"product": "reviewed", "amount": "40000.00", "term_months": 3, "purpose": "stock"},
            headers=mine,
        )
        loan_id = created.json()["id"]
        live = await poll(
            live_view, lambda v: v["status"] == "scoring" and v["risk_grade"], "the loan to be scored and await review"
        )
        assert live["status"] == "scoring"
        assert (await api.get(f"/v1/operator/loans/{loan_id}/live", headers=mine)).status_code == 403
        assert (
            await api.post(f"/v1/operator/loans/{loan_id}/decision", json={"approve": True}, headers=mine)
        ).status_code == 403
        decided = await api.post(
            f"/v1/operator/loans/{loan_id}/decision", json={"approve": True, "reason": "documents checked"}, headers=ops
        )
        # Exactly "approved": the `decide` update answers once the review is over and the status
        # left "scoring", a condition checked as soon as `_set_status("approved")` (which
        # assigns first) awaits its record activity, before `_fund` can set "funding".
        assert (decided.status_code, decided.json()) == (200, {"status": "approved"})
        # The route sends every decision on a loan under one update id, `decision-{loan_id}`:
        # Temporal answers an update whose id already completed in this run with that
        # outcome, without running it again. So a second decision (here the opposite one) is
        # answered 200 with the first one's result, and the loan stays approved.
        again = await api.post(
            f"/v1/operator/loans/{loan_id}/decision", json={"approve": False, "reason": "changed my mind"}, headers=ops
        )
        assert (again.status_code, again.json()) == (200, {"status": "approved"})
        await wait_loan_status(api, loan_id, mine, "funding")
        for investor in investors:
            answer = await api.post(
                f"/v1/loans/{loan_id}/investments",
                json={"amount": "20000.00"},
                headers=bearer(settings, investor, "investor"),
            )
            assert answer.status_code == 201, answer.text
        await wait_loan_status(api, loan_id, mine, "active")
        available = (await api.get("/v1/wallets/me", headers=mine)).json()["available"]
        withdrawal = await api.post("/v1/wallets/withdrawals", json={"amount": available}, headers=mine)
        assert withdrawal.status_code == 201, withdrawal.text
        paid_out = await api.post(f"/v1/operator/withdrawals/{withdrawal.json()['id']}/pay", headers=ops)
        assert paid_out.status_code == 200, paid_out.text
        # the first installment falls due with the wallet empty: nothing is collected, it is overdue
        schedule = await poll(
            schedule_now, lambda rows: rows and rows[0]["status"] != "pending", "the first due date", timeout=90
        )  # about 30 s of wall time away
        # The loan clock had reached the first due date when the installment went overdue, so
        # from now on it is at least that midnight + (real seconds since) x scale.
        seen_overdue = loop.time()
        assert (schedule[0]["status"], schedule[0]["paid_principal"], schedule[0]["paid_interest"]) == (
            "overdue",
            "0.00",
            "0.00",
        ), schedule[0]
        first_due, second_due = (date.fromisoformat(r["due_date"]) for r in schedule[:2])
        overdue_amount = D(schedule[0]["principal"]) + D(schedule[0]["interest"])

        def late_fee(from_day: int, to_day: int) -> Decimal:
            """The standard product's rule, worked out here: 0.1% of the overdue amount for
            each day overdue beyond the 3 grace days, each stretch rounded half up."""
            chargeable = max(0, to_day - max(from_day, grace_days))
            return (overdue_amount * D("0.001") * chargeable).quantize(D("0.01"), rounding=ROUND_HALF_UP)

        # the collection that found the wallet empty (normally on the due date itself: day 0)
        at_due = (await live_view())["installments"][0]
        first_look = at_due["fee_accrued_day"]
        assert (at_due["status"], D(at_due["fee_accrued"])) == ("overdue", late_fee(0, first_look)), at_due
        # The workflow's clock only moves when it wakes (a query does not wake it), so the test
        # awaits the loan-time moment itself: 5 days past the due date, 2 beyond the grace days.
        past_grace = seen_overdue + (grace_days + 2) * 86400 / scale
        await asyncio.sleep(max(0.0, past_grace - loop.time()))
        deposit = await api.post("/v1/wallets/deposits", json={"amount": "50000.00"}, headers=mine)
        assert deposit.status_code == 201, deposit.text
        confirming_at = datetime.now(UTC)
        confirmed = await api.post(f"/v1/operator/deposits/{deposit.json()['id']}/confirm", headers=ops)
        assert confirmed.status_code == 200
        # the confirmation signals the loan, which wakes and collects the overdue installment
        live = await poll(
            live_view, lambda v: v["installments"][0]["status"] == "paid", "the overdue installment to be collected"
        )
        loan_today = date.fromisoformat(live["loan_today"])
        first, second = live["installments"][:2]
        # The loan day of that collection (the workflow's view: days overdue when it accrued the fee).
        days_overdue = first["fee_accrued_day"]
        # It was collected after the deposit (>= 5 days overdue, see above), and no later than
        # the loan clock as the workflow last saw it.
        assert grace_days + 2 <= days_overdue <= (loan_today - first_due).days, (days_overdue, live)
        # normally one stretch from day 0: (days overdue - 3) chargeable days at 0.1% of the installment;
        # two if the empty-wallet collection itself came late, past the grace days
        expected_fee = late_fee(0, first_look) + late_fee(first_look, days_overdue)
        assert (D(first["fee_accrued"]), D(first["paid_fee"])) == (expected_fee, expected_fee)
        # By construction (the margin above), the workflow took this snapshot before the second
        # due date; were the machine too slow for that, this says so rather than the next check.
        assert loan_today < second_due, f"the loan clock reached {loan_today}, past the second due date {second_due}"
        # So the overdue installment was collected by the deposit's signal, not by a wake-up at
        # the second due date (which would have taken both at once): the second is untouched.
        assert (second["status"], D(second["paid_principal"]), D(second["paid_interest"])) == (
            "pending",
            D("0.00"),
            D("0.00"),
        )
        schedule = await schedule_now()
        assert (schedule[0]["status"], D(schedule[0]["late_fee_paid"]), D(schedule[0]["late_fee_accrued"])) == (
            "paid",
            expected_fee,
            expected_fee,
        )
        assert (schedule[0]["paid_principal"], schedule[0]["paid_interest"]) == (
            schedule[0]["principal"],
            schedule[0]["interest"],
        )
        assert datetime.fromisoformat(schedule[0]["paid_at"]) >= confirming_at  # collected on the signal
        early = await api.post(f"/v1/loans/{loan_id}/early-repayment", headers=mine)
        assert early.status_code == 200, early.text
        # what is left of the principal, to the kopek (the two months not begun)
        assert D(early.json()["principal"]) == D(schedule[1]["principal"]) + D(schedule[2]["principal"])
        final = await wait_loan_status(api, loan_id, mine, "repaid", "defaulted", timeout=60)
        assert final["status"] == "repaid"
        # the trail names the operator who approved, and keeps the scoring reasons
        trail = (await api.get(f"/v1/loans/{loan_id}/trail", headers=ops)).json()
        approved = next(s for s in trail["steps"] if s["action"] == "loan.status" and s["details"]["to"] == "approved")
        assert (approved["actor_role"], approved["actor_id"]) == ("operator", str(operator))
        assert approved["details"]["scoring"]["operator_decision"]["reason"] == "documents checked"
        assert approved["details"]["scoring"]["reasons"]
        assert any(s["action"] == "installment.overdue" for s in trail["steps"]) and trail["chain"]["intact"]
    with session_factory() as session:
        assert_books_balance(session)
    # saved (RECORD_HISTORIES) only once the test's own checks have passed; search attributes on
    await replay_and_maybe_record(
        dev_client.get_workflow_handle(f"loan-{loan_id}"), "loan_review_approved_repaid_early"
    )


async def test_rejected_and_defaulted_loans_are_found_by_status_in_temporal(
    live_settings, dev_client, session_factory, seeded, task_queue
):
    """Operators search the Temporal UI by LoanStatus: a loan rejected at scoring and one that
    defaulted carry their final status, grade and borrower in their search attributes."""
    from temporalio.common import SearchAttributeKey

    from models.search_attributes import BORROWER_ID, LOAN_STATUS, PRODUCT

    settings = live_settings.model_copy(update={"LOAN_TIME_SCALE": 2592000})  # a month of loan time a second
    borrower = make_borrower(session_factory)
    over_indebted = make_borrower(session_factory, income="20000", obligations="5000")
    investors = [make_investor(session_factory, "30000") for _ in range(2)]
    app = create_app(settings)
    async with (
        running_worker(dev_client, settings, session_factory, task_queue),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api,
    ):
        mine, theirs = bearer(settings, borrower, "borrower"), bearer(settings, over_indebted, "borrower")
        refused = (
            await api.post(
                "/v1/loans", json={"amount": "300000.00", "term_months": 12, "purpose": "boat"}, headers=theirs
            )
        ).json()["id"]
        doomed = (
            await api.post("/v1/loans", json={"amount": "50000.00", "term_months": 6, "purpose": "stock"}, headers=mine)
        ).json()["id"]
        await wait_loan_status(api, doomed, mine, "funding")
        for investor in investors:
            answer = await api.post(
                f"/v1/loans/{doomed}/investments",
                json={"amount": "25000.00"},
                headers=bearer(settings, investor, "investor"),
            )
            assert answer.status_code == 201, answer.text
        await wait_loan_status(api, doomed, mine, "active")
        # the borrower spends the loan and never pays: 90 days overdue is 3 s here
        from tests.test_loan_lifecycle import withdraw_everything

        withdraw_everything(session_factory, borrower)
        assert (await wait_loan_status(api, doomed, mine, "defaulted", "repaid", timeout=60))["status"] == "defaulted"
        assert (await wait_loan_status(api, refused, theirs, "rejected", timeout=60))["status"] == "rejected"
        for loan_id, user, status in ((refused, over_indebted, "rejected"), (doomed, borrower, "defaulted")):
            handle = dev_client.get_workflow_handle(f"loan-{loan_id}")
            await handle.result()
            attributes = (await handle.describe()).typed_search_attributes
            assert attributes.get(LOAN_STATUS) == status
            assert attributes.get(BORROWER_ID) == str(user) and attributes.get(PRODUCT) == "standard"
            assert attributes.get(SearchAttributeKey.for_keyword("RiskGrade")) is not None
    with session_factory() as session:
        assert_books_balance(session)
    # saved (RECORD_HISTORIES) only once the test's own checks have passed; search attributes on
    await replay_and_maybe_record(
        dev_client.get_workflow_handle(f"loan-{refused}"), "loan_scoring_rejected_search_attributes"
    )
    await replay_and_maybe_record(dev_client.get_workflow_handle(f"loan-{doomed}"), "loan_defaulted_search_attributes")
