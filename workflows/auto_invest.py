"""An auto-invest run: plan (match rules, share oversubscribed loans and listings fairly),
place each investment through its loan workflow's `invest` update and each market purchase
through its `trade` update, record the outcomes.

Started every 15 minutes by the `auto-invest` Schedule for every loan open for funding and
every open listing, and at once by a loan entering funding (for that loan alone)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.auto_invest import AutoInvestActivities
    from models.auto_invest_io import (
        AutoInvestInput,
        AutoInvestResult,
        PlaceAutoInvestmentsInput,
        PlacementCounts,
        PlanAutoInvestInput,
    )

AUTO_INVEST_SCHEDULE_ID = "auto-invest"
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=20,
)


@workflow.defn(name="AutoInvestWorkflow")
class AutoInvestWorkflow:
    @workflow.run
    async def run(self, input: AutoInvestInput) -> AutoInvestResult:
        plan = await workflow.execute_activity_method(
            AutoInvestActivities.plan_auto_investments,
            PlanAutoInvestInput(
                run_key=f"{workflow.info().workflow_id}/{workflow.info().run_id}",
                loan_ids=input.loan_ids,
                at=workflow.now(),
                listing_ids=input.listings_planned(),
            ),
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RETRY,
            summary=f"plan auto-invest ({input.reason})",
        )
        workflow.set_current_details(f"run **{plan.run_no}** ({input.reason}): {plan.planned} investment(s) to place")
        counts = PlacementCounts()
        if plan.planned:
            counts = await workflow.execute_activity_method(
                AutoInvestActivities.place_auto_investments,
                PlaceAutoInvestmentsInput(run_no=plan.run_no),
                start_to_close_timeout=timedelta(minutes=30),
                heartbeat_timeout=timedelta(minutes=2),
                retry_policy=RETRY,
                summary=f"place {plan.planned} investment(s) through each loan's invest update",
            )
        return AutoInvestResult(
            run_no=plan.run_no, placed=counts.placed, refused=counts.refused, not_allocated=plan.not_allocated
        )
