"""Replay of saved histories: today's LoanWorkflow must make the same decisions as the code
that wrote them, in shape (Temporal's replayer: the same commands) and in content (the same
amounts in every activity input, the same answers to updates, the same final status and
figures; tests/history_replay.py). A change that breaks this needs workflow.patched.

Histories are recorded by the tests that live each path, with RECORD_HISTORIES=1: a new
recording is saved beside the old ones, never over them (see the README)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from tests.history_replay import HISTORIES, check_replay, load_history, manifest, saved_histories, sha256_of
from workflows.loan import BORROWERS_TIME, RECORDED_SINCE_PATCH

# Every path a loan can take that the workflow code must keep deciding the same way: where
# its last run must end (status, rejection reason), and the test that records it. A path
# with no saved history fails the suite, and so does a history that ends elsewhere.
REQUIRED_PATHS: dict[str, tuple[str, str | None, str]] = {
    "loan_repaid": ("repaid", None, "test_loan_lifecycle: funded by three, repaid on every due date"),
    "loan_repaid_with_agreements": ("repaid", None, "recorded after the loan-agreements patch"),
    "loan_repaid_with_auto_invest": ("repaid", None, "recorded after the auto-invest-on-funding patch"),
    "loan_late_then_paid": ("repaid", None, "test_loan_lifecycle: overdue, late fee, paid after funds_arrived"),
    "loan_defaulted": ("defaulted", None, "test_loan_lifecycle: written off, reserve fund cover"),
    "loan_unfunded": ("rejected", "funding_expired", "test_loan_lifecycle: the funding window closes"),
    "loan_repaid_early": ("repaid", None, "test_loan_lifecycle: repay_early update"),
    "loan_repaid_early_after_refusal": (
        "repaid",
        None,
        "test_loan_lifecycle: repay_early refused without the money, then accepted (a key per request)",
    ),
    "loan_refused_investments_do_not_end_the_run": (
        "repaid",
        None,
        "test_exactly_once_api: refused investments in the loan do not count toward its run's budget",
    ),
    "loan_investment_resent_after_continue_as_new": (
        "repaid",
        None,
        "test_loan_decisions: an investment resent in a later run gets its first answer",
    ),
    "loan_scoring_rejected": (
        "rejected",
        "the monthly payment would take the debt-to-income ratio",
        "test_loan_decisions: the debt-to-income cap rejects at scoring",
    ),
    "loan_review_approved": (
        "rejected",
        "funding_expired",
        "test_loan_decisions: an operator approves (decide), nobody invests",
    ),
    "loan_review_rejected": (
        "rejected",
        "rejected by operator: collateral missing",
        "test_loan_decisions: an operator rejects (decide)",
    ),
    "loan_review_timeout": ("rejected", "review_timeout", "test_loan_decisions: nobody decides in time"),
    "loan_disbursement_refused": (
        "rejected",
        "disbursement_refused: reservations",
        "test_loan_decisions: disbursement refused for good, the compensate patch",
    ),
    "loan_continued_while_funding": ("repaid", None, "test_loan_decisions: continue-as-new between investments"),
    "loan_continued_while_repaying": ("repaid", None, "test_loan_lifecycle: continue-as-new between installments"),
    "loan_repaid_search_attributes": ("repaid", None, "test_loan_api: through the API, search attributes on"),
    "loan_scoring_rejected_search_attributes": (
        "rejected",
        "the monthly payment would take",
        "test_loan_api: rejected at scoring, search attributes on",
    ),
    "loan_defaulted_search_attributes": ("defaulted", None, "test_loan_api: defaulted, search attributes on"),
    "loan_review_approved_repaid_early": (
        "repaid",
        None,
        "test_loan_api: through the API, search attributes on: "
        "approved, funded, overdue, woken by a deposit, repaid early",
    ),
    "loan_with_market_trades": ("repaid", None, "test_market: a holding sold in two parts mid-life, then repaid"),
    "loan_market_trades_continued_as_new": (
        "repaid",
        None,
        "test_market: trades past a repaying run's budget of updates continue the loan as new "
        "(patch repaying-run-full)",
    ),
    # financing modalities: an award credit, a programmed purchase's plan and award event
    "award_credit_repaid": ("repaid", None, "test_financing_modalities: an award credit paid to its seller, repaid"),
    "award_credit_from_a_plan_repaid": (
        "repaid",
        None,
        "test_financing_modalities: the award credit a plan's award started, as its child, repaid",
    ),
    "plan_awarded_with_a_late_contribution": (
        "awarded",
        "contributions reached",
        "test_financing_modalities: a plan with a late contribution reaches its award share",
    ),
    "plan_cancelled": ("cancelled", "cancelled by the borrower", "test_financing_modalities: the cancel update"),
    # the borrower's time (patch borrowers-time)
    "loan_outage_with_money": ("repaid", None, "test_borrowers_time: due dates passed while away, money there"),
    "loan_outage_without_money": (
        "repaid",
        None,
        "test_borrowers_time: due dates passed while away, no money: overdue from the failed attempt",
    ),
    "loan_paid_later_on_the_due_day": ("repaid", None, "test_borrowers_time: money later on the due day is on time"),
    "loan_repaid_while_its_agreements_waited": (
        "repaid",
        None,
        "test_documents_queue: the renderer stuck from the payout on, every installment collected, "
        "continued as new on the way (patch agreements-beside-repayment)",
    ),
    "loan_repaid_after_its_agreements_were_refused": (
        "repaid",
        None,
        "test_documents_queue: the agreements refused for good once, asked again an hour later",
    ),
    "loan_defaulted_after_an_outage": (
        "defaulted",
        None,
        "test_borrowers_time: a long absence, no money: default a threshold after the failed attempt",
    ),
}

SAVED = saved_histories()
OUTCOMES = sorted(HISTORIES.glob("*.outcome.json"))
MANIFEST = manifest()
# One case per saved history, stored outcome and manifest line: a history whose outcome was
# lost, an outcome whose history was deleted, or both deleted, is a failing case.
CASES = sorted(
    {p.name.removesuffix(".json") for p in SAVED}
    | {p.name.removesuffix(".outcome.json") for p in OUTCOMES}
    | {name.removesuffix(".json") for name in MANIFEST}
)


def _stored(stem: str) -> tuple[Path, dict]:
    history, outcome = HISTORIES / f"{stem}.json", HISTORIES / f"{stem}.outcome.json"
    assert history.exists(), f"{history.name} is missing"
    assert outcome.exists(), f"{outcome.name} is missing"
    assert history.name in MANIFEST, f"{history.name} is not in tests/histories/MANIFEST"
    return history, json.loads(outcome.read_text())


@pytest.mark.parametrize("stem", CASES)
async def test_saved_history_replays_to_its_stored_outcome(stem: str):
    history_file, meta = _stored(stem)
    # unaltered since it was recorded: a history that running loans may have is never replaced
    assert sha256_of(history_file) == meta["history_sha256"] == MANIFEST[history_file.name], (
        f"{history_file.name} was changed after recording"
    )
    history = await load_history(history_file.read_text())
    assert history.events, f"{history_file.name} holds no events"
    outcome, _ = await check_replay(history, expected=meta)
    assert outcome == meta["outcome"]


def test_every_path_has_its_saved_histories_ending_where_the_path_ends():
    runs: dict[str, list[dict]] = {}
    for stem in CASES:
        _, meta = _stored(stem)
        assert 1 <= meta["run"] <= meta["runs"]
        runs.setdefault(meta["path"], []).append(meta | {"stem": stem})
    missing = sorted(set(REQUIRED_PATHS) - set(runs))
    assert missing == [], f"no saved history for {missing}"
    for path, (status, reason, _) in REQUIRED_PATHS.items():
        last_runs = [m for m in runs[path] if m["run"] == m["runs"]]
        assert last_runs, f"{path}: no recording has its last run"
        for meta in last_runs:
            assert meta["outcome"] == "completed", meta["stem"]
            assert meta["result"]["status"] == status, f"{meta['stem']} ends {meta['result']['status']}"
            # (a loan's reason is its rejection reason; a plan's, why it was awarded or cancelled)
            said = meta["result"].get("rejection_reason", meta["result"].get("reason"))
            assert (said or "").startswith(reason or ""), meta["stem"]
            if reason is None and "rejection_reason" in meta["result"]:
                assert said is None, meta["stem"]
        # a path recorded over several runs (continue-as-new) has every one of them
        for meta in runs[path]:
            if meta["runs"] > 1:
                base = meta["stem"].rsplit(".run", 1)[0]
                assert all((HISTORIES / f"{base}.run{k}.json").exists() for k in range(1, meta["runs"] + 1))
    for path in ("loan_continued_while_funding", "loan_continued_while_repaying"):
        assert all(m["runs"] > 1 for m in runs[path]), f"{path} was recorded as a single run"


def _patch_markers(history_file: Path) -> set[str]:
    events = json.loads(history_file.read_text())["events"]
    found = set()
    for event in events:
        marker = event.get("markerRecordedEventAttributes", {})
        if marker.get("markerName") == "core_patch":
            payload = marker["details"]["patch-data"]["payloads"][0]["data"]
            found.add(json.loads(base64.b64decode(payload))["id"])
    return found


def test_every_patch_of_the_loan_workflow_has_a_history_recorded_after_it():
    """A patch's new branch replays only if some saved history took it."""
    source = (Path(__file__).parent.parent / "workflows" / "loan.py").read_text()
    patches = set(re.findall(r'workflow\.patched\(\s*"([^"]+)"\s*\)', source)) | set(RECORDED_SINCE_PATCH.values())
    assert len(patches) >= 6  # the walk found them
    assert "workflow.patched(BORROWERS_TIME)" in source
    patches.add(BORROWERS_TIME)
    taken = set().union(*(_patch_markers(p) for p in SAVED))
    assert sorted(patches - taken) == []
