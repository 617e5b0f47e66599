"""A product's monthly award event (README "Financing modalities"): held once per product and
month (the workflow id names both, so asking twice holds it once), its entries, seed and
winner recorded by one activity, then the winning plan's workflow told by a signal. An
operator runs it (POST /v1/operator/award-events), monthly."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.plans import PlanActivities
    from models.plan_workflow import AwardEventInput, AwardEventResult, AwardSignal

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=1)
)


def award_event_workflow_id(product_code: str, period: str) -> str:
    return f"award-event-{product_code}-{period}"


@workflow.defn(name="AwardEventWorkflow")
class AwardEventWorkflow:
    @workflow.run
    async def run(self, input: AwardEventInput) -> AwardEventResult:
        result = await workflow.execute_activity_method(
            PlanActivities.hold_award_event,
            input,
            start_to_close_timeout=timedelta(minutes=2),
            heartbeat_timeout=timedelta(seconds=10),
            retry_policy=RETRY,
            summary=f"hold the {input.period} award event of {input.product_code}",
        )
        if result.winner_plan_id is not None and result.winner_workflow_id is not None:
            try:
                await workflow.get_external_workflow_handle(result.winner_workflow_id).signal(
                    "award", AwardSignal(plan_id=result.winner_plan_id, award_event_id=result.event_id)
                )
            except Exception:
                # The winner's workflow ended meanwhile (awarded at its last contribution, which
                # took this event's bid with it): the event is held all the same.
                workflow.logger.warning("the winner's plan workflow %s has ended", result.winner_workflow_id)
            workflow.set_current_details(f"{result.entries} entries; plan {result.winner_plan_id} won")
        else:
            workflow.set_current_details(f"{result.entries} entries; nobody won")
        return result
