"""The back office in a real browser: Debian's Chromium driven by Playwright, against the
platform served over HTTP (uvicorn), a worker and the real Temporal dev server.

One lifecycle through the pages, each role in its own browser context (its own cookies):
an operator makes every loan of the product need a review; a borrower fills in the profile,
prices a loan in the calculator, saves the simulation and applies from it; the operator
approves the reviewed loan; an investor announces a deposit, the operator confirms it and the
investor's dashboard shows the money; the investor invests and sees the holding; compliance
opens the trail, sees "Intact" and downloads the PDF. Then the refusals: a form without its
CSRF token, and a borrower typing an operator's URL.

Each role's home page is screenshotted (to WEB_SCREENSHOTS, e.g. docs/screenshots, when set:
that is how the README's pictures are refreshed; to the test's temporary folder otherwise)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from decimal import Decimal
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import func, select

from api.main import create_app
from models.ledger import Deposit
from models.loans import Investment, LoanRequest
from runner.ports import free_port
from tests.api_helpers import sign_up
from tests.loan_helpers import running_worker

pytestmark = pytest.mark.slow

D = Decimal
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
WAIT_MS = 60_000


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:  # `make test` installs it; a bare pytest run says how
        pytest.fail("the browser tests need Debian's Chromium: apt-get install -y chromium (make test does it)")
    return path


@contextmanager
def serving(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The app over real HTTP on a free port, in a thread of this process; stopped on exit."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", proxy_headers=False)
    )
    thread = threading.Thread(target=server.run, name="web-under-test", daemon=True)
    thread.start()
    try:
        for _ in range(600):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.05)
        if not server.started:
            raise RuntimeError("uvicorn did not start within 30 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "the test's uvicorn did not stop"


@asynccontextmanager
async def chromium() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


def screenshot_dir(tmp_path: Path) -> Path:
    target = Path(os.environ.get("WEB_SCREENSHOTS") or tmp_path / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target


async def log_in(browser, base: str, account):  # type: ignore[no-untyped-def]
    context = await browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = await context.new_page()
    await page.goto("/app/login")
    await page.get_by_label("Email").fill(account.email)
    await page.get_by_label("Password").fill(account.password)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(re.compile(rf"/app/{account.role}$"))
    return page


async def log_in_by_keyboard(browser, base: str, account):  # type: ignore[no-untyped-def]
    """Tab from the top of the page: the skip link, the email, the password; Enter sends."""
    context = await browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = await context.new_page()
    await page.goto("/app/login")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "email"
    await page.keyboard.type(account.email)
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "password"
    await page.keyboard.type(account.password)
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(rf"/app/{account.role}$"))
    return page


async def reload_until(page, locator, seconds: float = 60) -> None:  # type: ignore[no-untyped-def]
    """Pages are rendered on the server: reload until the workflow has moved on."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while await locator.count() == 0:
        assert loop.time() < deadline, f"never appeared on {page.url}"
        await asyncio.sleep(0.5)
        await page.reload()


def count(session_factory, query) -> int:  # type: ignore[no-untyped-def]
    with session_factory() as session:
        return int(session.scalar(query) or 0)


async def test_the_back_office_in_chromium_through_a_loans_life(
    live_settings, dev_client, session_factory, seeded, task_queue, operator, compliance, client, tmp_path
):
    settings = live_settings
    shots = screenshot_dir(tmp_path)
    borrower = sign_up(client, "borrower")
    investor = sign_up(client, "investor")
    async with running_worker(dev_client, settings, session_factory, task_queue):
        with serving(create_app(settings)) as base:
            async with chromium() as browser:
                op = await log_in(browser, base, operator)

                # The operator makes every loan of `standard` need a review (a new version).
                await op.goto("/app/operator/products/standard")
                await op.get_by_label("Every loan needs an operator's approval").check()
                await op.get_by_role("button", name="Save new version").click()
                await op.get_by_text("A new version of the product is saved.").wait_for()
                await op.get_by_role("heading", name=re.compile(r"^Version 2")).wait_for()
                assert await op.get_by_role("rowheader", name="requires_manual_approval").count() == 1

                # The borrower: profile, calculator, saved simulation, application.
                bp = await log_in(browser, base, borrower)
                await bp.get_by_label("Monthly income (RUB)").fill("180 000")
                await bp.get_by_label("Monthly payments on other debts (RUB)").fill("0")
                await bp.get_by_label("Months in current employment").fill("40")
                await bp.get_by_role("button", name="Save profile").click()
                await bp.get_by_text("Your profile is saved").wait_for()
                await bp.get_by_role("link", name="Calculator", exact=True).click()
                await bp.get_by_label("Amount (RUB)").fill("abc")
                await bp.get_by_label("Term (months)").fill("12")
                await bp.get_by_role("button", name="Calculate").click()
                assert await bp.locator("#amount-error").is_visible()  # the error beside its field
                await bp.get_by_label("Amount (RUB)").fill("100000")
                await bp.get_by_label("Risk grade").select_option("B")
                await bp.get_by_role("button", name="Calculate").click()
                await bp.get_by_role("table", name=re.compile("Amortization table")).wait_for()
                assert await bp.locator("figure.chart svg rect.bar").count() == 24  # 12 x principal, interest
                await bp.get_by_role("button", name="Save this simulation").click()
                await bp.get_by_text("Simulation saved").wait_for()
                await bp.get_by_label("What the loan is for").fill("a used tractor")
                await bp.get_by_role("button", name=re.compile("Apply for")).click()
                await bp.get_by_text("Your loan request is in").wait_for()
                assert count(session_factory, select(func.count()).select_from(LoanRequest)) == 1
                await reload_until(bp, bp.get_by_text("a used tractor"))
                await bp.screenshot(path=str(shots / "borrower.png"), full_page=True)

                # The operator approves it from the review queue, with its scoring reasons.
                await op.goto("/app/operator/reviews")
                await reload_until(op, op.get_by_role("heading", name=re.compile("100 000.00 RUB over 12 months")))
                assert await op.get_by_role("table", name="Scoring reasons").count() == 1
                await op.get_by_label("Approve").check()
                await op.get_by_label(re.compile("^Reason")).fill("income well above the payment")
                await op.get_by_role("button", name="Record decision").click()
                await op.get_by_text("The loan is approved").wait_for()

                # The investor announces a deposit; the operator confirms it; the money shows.
                ip = await log_in(browser, base, investor)
                await ip.locator("#deposit-amount").fill("50 000")
                await ip.locator("#deposit-bank_reference").fill("PP-7788")
                await ip.get_by_role("button", name="Announce deposit").click()
                await ip.get_by_text("Deposit announced").wait_for()
                await op.goto("/app/operator/payments")
                await op.get_by_role("button", name="Confirm: money received").click()
                await op.get_by_text("The deposit is confirmed").wait_for()
                await ip.reload()
                assert (await ip.locator("#wallet-balance").inner_text()).replace("\u202f", " ") == "50 000.00 RUB"

                # The investor invests in the approved loan and sees the holding.
                loan_row = ip.locator("tr[data-loan]").filter(has_text="standard")
                await reload_until(ip, loan_row)
                loan_id = await loan_row.first.get_attribute("data-loan")
                await loan_row.first.get_by_label("Amount").fill("30000")
                await loan_row.first.get_by_role("button", name="Invest").click()
                await ip.get_by_text("Invested: the money is reserved").wait_for()
                holding = ip.locator(f'#holdings tr[data-loan="{loan_id}"]')
                assert await holding.count() == 1
                assert "30 000.00" in (await holding.inner_text()).replace("\u202f", " ")
                assert count(session_factory, select(func.count()).select_from(Investment)) == 1
                await ip.screenshot(path=str(shots / "investor.png"), full_page=True)

                # The operator's loan page: the lifecycle with "funding" current, the investor.
                await op.goto(f"/app/operator/loans/{loan_id}")
                current = op.locator("svg g.state.current")
                assert await current.count() == 1 and await current.get_attribute("data-status") == "funding"
                assert await op.get_by_role("link", name=re.compile("in the Temporal UI")).count() == 1
                await op.screenshot(path=str(shots / "operator-loan.png"), full_page=True)
                await op.goto("/app/operator")
                await op.screenshot(path=str(shots / "operator.png"), full_page=True)

                # Compliance logs in with the keyboard alone, then: the trail is intact, and its
                # PDF downloads.
                cp = await log_in_by_keyboard(browser, base, compliance)
                await cp.screenshot(path=str(shots / "compliance.png"), full_page=True)
                trail_link = cp.get_by_role("link", name=re.compile(f"Open the trail of loan {loan_id[:8]}"))
                await trail_link.focus()
                await cp.keyboard.press("Enter")
                await cp.wait_for_url(re.compile(f"/app/compliance/loans/{loan_id}$"))
                assert (await cp.locator("#verify").inner_text()).strip() == "Intact"
                async with cp.expect_download() as download_info:
                    await cp.get_by_role("link", name="Download the trail as PDF").click()
                download = await download_info.value
                pdf = Path(await download.path()).read_bytes()
                assert pdf.startswith(b"%PDF")

                # CSRF: the investor's own form, its token taken out, is refused; nothing moves.
                deposits_before = count(session_factory, select(func.count()).select_from(Deposit))
                await ip.goto("/app/investor")
                await ip.locator('form[action="/app/investor/deposits"] input[name="csrf_token"]').evaluate(
                    "input => input.remove()"
                )
                await ip.locator("#deposit-amount").fill("1000")
                await ip.get_by_role("button", name="Announce deposit").click()
                await ip.get_by_role("heading", name="Form refused").wait_for()
                assert count(session_factory, select(func.count()).select_from(Deposit)) == deposits_before

                # A borrower who types an operator's URL is refused, and sees none of it.
                refused = await bp.goto(f"{base}/app/operator/payments")
                assert refused is not None and refused.status == 403
                assert await bp.get_by_text("Deposits awaiting confirmation").count() == 0
                refused = await bp.goto(f"{base}/app/operator/loans/{loan_id}")
                assert refused is not None and refused.status in (403, 404)
