"""The README's screenshot: a defaulted loan of a running `make demo`, decoded in the Temporal
UI, taken by headless Chromium (Playwright driving Debian's `chromium`).

    make demo            # in one terminal, until its summary
    .venv/bin/python -m runner.screenshot docs/temporal-ui-loan.png

Needs `pip install playwright` and `apt-get install chromium` (not part of the project's
dependencies: only whoever refreshes the screenshot needs them).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys

from temporalio.client import Client

from core.settings import PROJECT_ROOT, get_settings
from runner.local_secrets import apply_local_secrets


async def a_defaulted_loan(address: str) -> str:
    client = await Client.connect(address)
    async for workflow in client.list_workflows('WorkflowType = "LoanWorkflow" AND LoanStatus = "defaulted"'):
        return workflow.id
    raise SystemExit("no defaulted loan: run `make demo` first, until its summary")


def main(target: str) -> None:
    from playwright.sync_api import sync_playwright

    # the demo's settings, with the secrets it generated (there are no built-in ones)
    os.environ.setdefault("DATA_DIR", str(PROJECT_ROOT / "data" / "demo"))
    apply_local_secrets()
    settings = get_settings()
    workflow_id = asyncio.run(a_defaulted_loan(f"127.0.0.1:{settings.TEMPORAL_DEV_PORT}"))
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("needs Debian's chromium: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(viewport={"width": 1440, "height": 1100})
        page.goto(f"http://localhost:{settings.TEMPORAL_UI_PORT}/namespaces/default/workflows/{workflow_id}")
        # decoded by the local-dev codec: the loan's input reads as JSON, not as an encrypted blob
        page.get_by_text("product_code").first.wait_for(timeout=60_000)
        page.wait_for_timeout(1500)  # (let the timeline finish drawing)
        page.screenshot(path=target)
        browser.close()
    print(f"{target}: {workflow_id}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/temporal-ui-loan.png")
