"""Monthly investor statements, started by a Schedule on the first of each month for the
month that just ended (or by hand, for a given month)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.documents import DocumentActivities
    from models.documents_io import InvestorStatementsInput, StatementsBatch, StatementsResult

STATEMENTS_SCHEDULE_ID = "investor-statements"


@workflow.defn(name="InvestorStatementsWorkflow")
class InvestorStatementsWorkflow:
    @workflow.run
    async def run(self, input: InvestorStatementsInput) -> StatementsResult:
        month = input.month
        if month is None:
            today = workflow.now().date()
            year, number = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
            month = f"{year:04d}-{number:02d}"
        workflow.set_current_details(f"statements for **{month}**")
        return await workflow.execute_activity_method(
            DocumentActivities.generate_investor_statements,
            StatementsBatch(month=month),
            summary=f"investor statements for {month}",
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=5),
                maximum_interval=timedelta(minutes=5),
                non_retryable_error_types=["InvalidRequest"],
            ),
        )
