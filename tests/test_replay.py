"""Replay of saved histories: today's LoanWorkflow must make the same decisions as the code
that wrote them. A change that breaks this needs workflow.patched (see the README).

Histories are recorded by running the lifecycle tests with RECORD_HISTORIES=1."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.codec_keys import test_data_converter
from workflows.loan import LoanWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_saved():
    names = {path.stem for path in HISTORIES}
    assert {"loan_repaid", "loan_late_then_paid", "loan_defaulted", "loan_unfunded", "loan_repaid_early",
            # recorded after the "loan-agreements" and then the "auto-invest-on-funding" patch:
            # loans started before and after each replay
            "loan_repaid_with_agreements", "loan_repaid_with_auto_invest"} <= names


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_saved_history_replays(path: Path):
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    await Replayer(workflows=[LoanWorkflow], data_converter=test_data_converter()).replay_workflow(history)
