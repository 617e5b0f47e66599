"""Replay of saved histories: today's LoanWorkflow must make the same decisions as the code
that wrote them, in shape (Temporal's replayer: the same commands) and in content (the same
amounts in every activity input, the same answers to updates, the same final status and
figures; tests/history_replay.py). A change that breaks this needs workflow.patched.

Histories are recorded by the tests that live each path, with RECORD_HISTORIES=1: a new
recording is saved beside the old ones, never over them (see the README)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.history_replay import HISTORIES, check_replay, load_history, outcome_file, saved_histories, sha256_of

# Every path a loan can take that the workflow code must keep deciding the same way, and
# the tests that record it. A path with no saved history fails the suite.
REQUIRED_PATHS = {
    "loan_repaid": "test_loan_lifecycle: funded by three, repaid on every due date",
    "loan_repaid_with_agreements": "recorded after the loan-agreements patch",
    "loan_repaid_with_auto_invest": "recorded after the auto-invest-on-funding patch",
    "loan_late_then_paid": "test_loan_lifecycle: overdue, late fee, paid after funds_arrived",
    "loan_defaulted": "test_loan_lifecycle: written off, reserve fund cover",
    "loan_unfunded": "test_loan_lifecycle: funding window closes, reservations released",
    "loan_repaid_early": "test_loan_lifecycle: repay_early update",
    "loan_scoring_rejected": "test_loan_decisions: the debt-to-income cap rejects at scoring",
    "loan_review_approved": "test_loan_decisions: an operator approves through the decide update",
    "loan_review_rejected": "test_loan_decisions: an operator rejects through the decide update",
    "loan_review_timeout": "test_loan_decisions: nobody decides, the review times out",
    "loan_disbursement_refused": "test_loan_decisions: disbursement refused for good, the compensate patch",
    "loan_continued_while_funding": "test_loan_decisions: continue-as-new between investments",
    "loan_continued_while_repaying": "test_loan_lifecycle: continue-as-new between installments",
    "loan_repaid_search_attributes": "test_loan_api: through the API on the dev server, search attributes on",
}

SAVED = saved_histories()
OUTCOMES = sorted(HISTORIES.glob("*.outcome.json"))
# One case per saved history and per stored outcome: a history whose outcome was lost, or an
# outcome whose history was deleted, is a failing case, not a silently skipped one.
CASES = sorted({p.name.removesuffix(".json") for p in SAVED}
               | {p.name.removesuffix(".outcome.json") for p in OUTCOMES})


def _stored(stem: str) -> tuple[Path, dict]:
    history, outcome = HISTORIES / f"{stem}.json", HISTORIES / f"{stem}.outcome.json"
    assert history.exists(), f"{history.name} is missing (its outcome is stored)"
    assert outcome.exists(), f"{outcome.name} is missing: record it with RECORD_HISTORIES=1"
    return history, json.loads(outcome.read_text())


def test_every_path_has_its_saved_histories():
    paths: dict[str, set[int]] = {}
    for stem in CASES:
        _, meta = _stored(stem)
        paths.setdefault(meta["path"], set())
        assert 1 <= meta["run"] <= meta["runs"]
    for stem in CASES:
        _, meta = _stored(stem)
        paths[meta["path"]].add(meta["run"])
    missing = sorted(set(REQUIRED_PATHS) - set(paths))
    assert missing == [], f"no saved history for {missing}"
    # a path recorded over several runs (continue-as-new) has every one of them
    for stem in CASES:
        _, meta = _stored(stem)
        if meta["runs"] > 1:
            base = stem.rsplit(".run", 1)[0]
            assert all((HISTORIES / f"{base}.run{k}.json").exists() for k in range(1, meta["runs"] + 1)), stem


def test_continue_as_new_paths_span_runs():
    for path in ("loan_continued_while_funding", "loan_continued_while_repaying"):
        runs = [json.loads(outcome_file(p).read_text()) for p in SAVED if outcome_file(p).exists()]
        assert any(m["path"] == path and m["runs"] > 1 for m in runs), f"{path} was recorded as a single run"


@pytest.mark.parametrize("stem", CASES)
async def test_saved_history_replays_to_its_stored_outcome(stem: str):
    history_file, meta = _stored(stem)
    # unaltered since it was recorded: a history that running loans may have is never replaced
    assert sha256_of(history_file) == meta["history_sha256"], f"{history_file.name} was changed after recording"
    history = await load_history(history_file.read_text())
    assert history.events, f"{history_file.name} holds no events"
    outcome, _ = await check_replay(history, expected=meta)
    assert outcome == meta["outcome"]
