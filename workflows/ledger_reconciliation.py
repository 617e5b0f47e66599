"""A periodic check that the ledger balances, run by a Temporal Schedule so operators see
each run (and any failure) in the Temporal UI."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.ledger_checks import LedgerCheckActivities
    from models.ledger_reports import ReconciliationInput, ReconciliationResult

RECONCILIATION_SCHEDULE_ID = "ledger-reconciliation"


@workflow.defn(name="LedgerReconciliation")
class LedgerReconciliationWorkflow:
    @workflow.run
    async def run(self, input: ReconciliationInput) -> ReconciliationResult:
        result = await workflow.execute_activity_method(
            LedgerCheckActivities.check_trial_balance,
            input,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=5), maximum_attempts=5),
            summary="every account against the sum of its postings",
        )
        if not result.balanced:
            # Fail the run so the Schedule's recent actions show it in red.
            raise ApplicationError(
                f"ledger out of balance: total {result.total}, mismatched {result.mismatched_accounts}",
                non_retryable=True,
            )
        return result
