"""A programmed purchase's savings phase: one durable workflow per plan, from its first
contribution to its award (then the award credit's loan workflow takes over) or its
cancellation. The rules are domain/purchase_plan.py's (README "Financing modalities").

    saving -> awarded    (the product's rule: the share reached, an award event won, or the
                          last contribution paid; the rest of the price becomes an award
                          credit, started here as the loan's own workflow)
           -> cancelled  (by the borrower, or for a contribution unpaid for the
                          product's default days; contributions refunded per the product)

A timer per contribution: on its due day the plan collects it from the wallet. Lateness as
an installment's, on the borrower's time: a contribution the wallet cannot pay on its day is
tried again when the day has ended and becomes overdue then; it is tried every day after and
at once when money arrives (a confirmed deposit's signal); its late fee counts the days from
its due date to the day the money was there, after the product's grace; the platform's own
delay is never one of them.

Deterministic: no I/O, no clock but workflow.now(). The sandbox clock as a loan's: plan time
passes `time_scale` times faster than workflow time from the plan's start.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.plans import PlanActivities
    from domain.calendar import day_of, day_start
    from domain.fees import accrue_late_fee
    from domain.purchase_plan import contribution_schedule, share_reached
    from models.loan_workflow import LoanWorkflowInput
    from models.plan_workflow import (
        AwardPlanInput,
        AwardSignal,
        CancelPlanInput,
        CancelPlanRequest,
        CancelPlanResult,
        CollectContributionInput,
        ContributionOverdue,
        ContributionState,
        PlanFundsArrived,
        PlanSnapshot,
        PlanState,
        PlanWorkflowInput,
        StartPlanInput,
    )
    from models.search_attributes import BORROWER_ID, LOAN_STATUS, PRODUCT

from workflows.loan import LoanWorkflow

DB_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=2)
)
ACTIVITY_TIMEOUT = timedelta(seconds=60)
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
# A plan's run continues as new past this many history events (a long late spell, tried
# every day, grows it), carrying its state.
HISTORY_EVENTS_PER_RUN = 5_000

Input = TypeVar("Input")
Result = TypeVar("Result")


class PlanNotSaving(Exception):
    """A cancellation asked of a plan that is no longer saving (awarded or cancelled)."""


@workflow.defn(name="PurchasePlanWorkflow")
class PurchasePlanWorkflow:
    @workflow.init
    def __init__(self, input: PlanWorkflowInput) -> None:
        self._input = input
        self._state = input.state.model_copy(deep=True) if input.state else PlanState()
        self._lock = asyncio.Lock()
        self._wake = False

    @workflow.run
    async def run(self, input: PlanWorkflowInput) -> PlanSnapshot:
        state = self._state
        if workflow.info().workflow_id != f"plan-{input.plan_id}":
            raise ApplicationError(f"plan {input.plan_id} runs only as plan-{input.plan_id}", non_retryable=True)
        if input.state is None:
            await self._start()
        while state.status == "saving":
            self._wake = False
            async with self._lock:
                if state.status != "saving":
                    break
                await self._collect_due()
                if state.status == "saving":
                    why = self._award_due()
                    if why is not None:
                        await self._award(why)
                    elif self._default_due():
                        won = await self._cancel_unless_awarded(
                            CancelPlanRequest(reason="a contribution unpaid past the product's default days"),
                            actor_role="system",
                        )
                        if won is not None:  # it won an award event meanwhile: awarded at once
                            state.award_event_id = won
                            await self._award("award event won")
            if state.status != "saving":
                break
            wake, why = self._next_wake()
            workflow.set_current_details(self._details(f"waiting for {why}, or money in the borrower's wallet"))
            try:
                await workflow.wait_condition(
                    lambda: self._wake or state.status != "saving",
                    timeout=self._real_delay_until(wake),
                    timeout_summary=why,
                )
            except TimeoutError:
                pass
            info = workflow.info()
            if state.status == "saving" and (
                info.is_continue_as_new_suggested() or info.get_current_history_length() > HISTORY_EVENTS_PER_RUN
            ):
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(input.model_copy(update={"state": state}))
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.set_current_details(self._details(f"the plan is {state.status}"))
        return self.snapshot()

    # -- the plan's clock ----------------------------------------------------------------------
    def _plan_now(self) -> datetime:
        origin = self._state.clock_origin
        assert origin is not None
        return origin + (workflow.now() - origin) * self._input.time_scale

    def _today(self) -> date:
        return day_of(self._plan_now(), self._input.time_zone)

    def _day_start(self, day: date) -> datetime:
        return day_start(day, self._input.time_zone)

    def _real_delay_until(self, moment: datetime) -> timedelta:
        return max((moment - self._plan_now()) / self._input.time_scale, timedelta(0))

    def _to_plan_time(self, moment: datetime) -> datetime:
        origin = self._state.clock_origin
        assert origin is not None
        return origin + (moment - origin) * self._input.time_scale if moment > origin else moment

    # -- phases -----------------------------------------------------------------------------------
    async def _start(self) -> None:
        state, input = self._state, self._input
        state.clock_origin = workflow.now()
        state.started_on = self._today()
        state.contributions = [
            ContributionState(number=c.number, due_date=c.due_date, amount=c.amount)
            for c in contribution_schedule(input.monthly_contribution, input.contribution_months, state.started_on)
        ]
        await self._call(
            PlanActivities.start_plan,
            StartPlanInput(
                plan_id=input.plan_id,
                started_on=state.started_on,
                contributions=[c.model_copy() for c in state.contributions],
                at=workflow.now(),
            ),
            summary=f"fix {len(state.contributions)} contributions of {input.monthly_contribution:.2f}",
        )

    def _due(self) -> list[ContributionState]:
        today = self._today()
        return [c for c in self._state.contributions if c.status in ("pending", "overdue") and c.due_date <= today]

    async def _collect_due(self) -> None:
        """Every contribution due, oldest first; the first the wallet cannot pay stops the round."""
        state, terms = self._state, self._input.terms
        today = self._today()
        paid_on = today
        if state.funds_arrived_at is not None:
            # the money was there on the day it arrived: later is the platform's delay
            paid_on = min(today, day_of(self._to_plan_time(state.funds_arrived_at), self._input.time_zone))
        for item in self._due():
            paid_day = max(paid_on, item.due_date)
            fee = accrue_late_fee(
                item.amount,
                terms.late_fee_percent_per_day,
                terms.late_fee_grace_days,
                0,
                (paid_day - item.due_date).days,
            )
            result = await self._call(
                PlanActivities.collect_contribution,
                CollectContributionInput(
                    plan_id=self._input.plan_id, number=item.number, amount=item.amount, late_fee=fee, paid_on=paid_day
                ),
                summary=f"collect contribution {item.number} of {len(state.contributions)}: {item.amount:.2f}"
                + (f" + late fee {fee:.2f}" if fee else ""),
            )
            if result.paid:
                item.status, item.late_fee, item.paid_on = "paid", result.late_fee, result.paid_on
                state.contributed = result.contributed
                state.late_fees_paid += result.late_fee
                continue
            # Short: overdue once the due day has ended (the borrower had all of it to pay).
            if item.status == "pending" and today > item.due_date:
                item.status = "overdue"
                await self._call(
                    PlanActivities.mark_contribution_overdue,
                    ContributionOverdue(plan_id=self._input.plan_id, number=item.number, at=workflow.now()),
                    summary=f"contribution {item.number} is overdue",
                )
            break
        state.funds_arrived_at = None

    def _award_due(self) -> str | None:
        state, input = self._state, self._input
        if state.award_event_id is not None:
            return "award event won"
        if input.terms.award_rule == "share_reached":
            assert input.terms.award_share_percent is not None
            if share_reached(state.contributed, input.asset_price, input.terms.award_share_percent):
                return f"contributions reached {input.terms.award_share_percent.normalize():f}% of the price"
        if all(c.status == "paid" for c in state.contributions):
            return "last contribution paid"
        return None

    def _default_due(self) -> bool:
        today = self._today()
        limit = self._input.terms.default_after_days_overdue
        return any(c.status == "overdue" and (today - c.due_date).days >= limit for c in self._state.contributions)

    def _next_wake(self) -> tuple[datetime, str]:
        today = self._today()
        unpaid = [c for c in self._state.contributions if c.status in ("pending", "overdue")]
        if any(c.due_date <= today for c in unpaid):
            # try again tomorrow (and at once if money arrives)
            return self._day_start(today + timedelta(days=1)), "the next day's try of an unpaid contribution"
        upcoming = min(unpaid, key=lambda c: c.due_date)
        return (
            self._day_start(upcoming.due_date),
            f"contribution {upcoming.number} of {len(self._state.contributions)} due {upcoming.due_date:%Y-%m-%d}",
        )

    async def _award(self, why: str) -> None:
        state, input = self._state, self._input
        result = await self._call(
            PlanActivities.award_plan,
            AwardPlanInput(
                plan_id=input.plan_id,
                reason=why,
                award_event_id=state.award_event_id,
                at=workflow.now(),
                time_scale=input.time_scale,
                time_zone=input.time_zone,
            ),
            summary=f"award the plan ({why}): the rest of the price as an award credit",
        )
        if result.loan is None:
            state.status, state.reason, state.refunded = "cancelled", result.refused, result.refunded
            return
        state.status, state.reason, state.award_loan_id = "awarded", why, result.loan.loan_id
        await self._start_award_credit(result.loan.model_copy(update={"search_attributes": input.search_attributes}))

    async def _start_award_credit(self, loan: LoanWorkflowInput) -> None:
        """The award credit's own loan workflow, started once and left to run on its own."""
        try:
            await workflow.start_child_workflow(
                LoanWorkflow.run,
                loan,
                id=f"loan-{loan.loan_id}",
                task_queue=workflow.info().task_queue,
                parent_close_policy=ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(LOAN_STATUS, "pending"),
                        SearchAttributePair(BORROWER_ID, str(loan.borrower_id)),
                        SearchAttributePair(PRODUCT, loan.terms.product_code),
                    ]
                )
                if loan.search_attributes
                else None,
                static_summary=f"Award credit {loan.amount:.2f} {loan.terms.currency}, {loan.term_months} months, "
                f"from plan {self._input.plan_id}",
            )
        except WorkflowAlreadyStartedError:
            pass  # (started before: one loan per award)

    @staticmethod
    def _won_award_event(error: ActivityError) -> uuid.UUID | None:
        """The award event a cancellation was refused for (the plan won it), if that was why."""
        cause = error.cause
        if isinstance(cause, ApplicationError) and cause.type == "PlanWonAwardEvent" and cause.details:
            details = cause.details[0]
            if isinstance(details, dict) and details.get("award_event_id"):
                return uuid.UUID(str(details["award_event_id"]))
        return None

    async def _cancel_unless_awarded(self, request: CancelPlanRequest, actor_role: str) -> uuid.UUID | None:
        """Cancels; or, if the plan won an award event the workflow has not heard of yet, the
        event's id (any other refusal fails loudly)."""
        try:
            await self._cancel(request, actor_role)
        except ActivityError as error:
            won = self._won_award_event(error)
            if won is None:
                raise
            return won
        return None

    async def _cancel(self, request: CancelPlanRequest, actor_role: str | None = None) -> CancelPlanResult:
        state = self._state
        result = await self._cancel_in_db(request, actor_role)
        state.status, state.reason, state.refunded = "cancelled", request.reason, result.refunded
        for item in state.contributions:
            if item.status in ("pending", "overdue"):
                item.status = "cancelled"
        return result

    async def _cancel_in_db(self, request: CancelPlanRequest, actor_role: str | None) -> CancelPlanResult:
        input = self._input
        refund_percent = input.terms.cancellation_refund_percent
        return await self._call(
            PlanActivities.cancel_plan,
            CancelPlanInput(
                plan_id=input.plan_id,
                reason=request.reason,
                refund_percent=refund_percent,
                actor_id=request.actor_id,
                actor_role=actor_role or request.actor_role,
                at=workflow.now(),
            ),
            summary=f"cancel the plan ({request.reason}): {refund_percent.normalize():f}% of the contributions back",
        )

    # -- handlers -----------------------------------------------------------------------------------
    @workflow.update
    async def cancel(self, request: CancelPlanRequest) -> CancelPlanResult:
        async with self._lock:
            self._check_cancellable()
            try:
                return await self._cancel(request)
            except ActivityError as error:
                cause = error.cause
                if self._won_award_event(error) is not None:
                    # the plan won an award event the workflow has not heard of yet
                    raise ApplicationError(
                        "the plan won an award event: its award is under way",
                        type=PlanNotSaving.__name__,
                        non_retryable=True,
                    ) from None
                if isinstance(cause, ApplicationError) and cause.non_retryable:
                    raise ApplicationError(cause.message, type=cause.type, non_retryable=True) from None
                raise

    @cancel.validator
    def _validate_cancel(self, request: CancelPlanRequest) -> None:
        self._check_cancellable()

    def _check_cancellable(self) -> None:
        state = self._state
        if state.status != "saving":
            raise ApplicationError(f"the plan is {state.status}", type=PlanNotSaving.__name__, non_retryable=True)
        if state.award_event_id is not None:
            raise ApplicationError(
                "the plan won an award event: its award is under way", type=PlanNotSaving.__name__, non_retryable=True
            )

    @workflow.signal
    def funds_arrived(self, event: PlanFundsArrived) -> None:
        if event.plan_id != self._input.plan_id:
            return
        arrived = min(event.at, workflow.now()) if event.at else workflow.now()
        state = self._state
        if state.funds_arrived_at is None or arrived < state.funds_arrived_at:
            state.funds_arrived_at = arrived
        self._wake = True

    @workflow.signal
    def award(self, signal: AwardSignal) -> None:
        """This plan won an award event (recorded by the event before it was sent)."""
        if signal.plan_id != self._input.plan_id or self._state.status != "saving":
            return
        self._state.award_event_id = signal.award_event_id
        self._wake = True

    @workflow.query
    def snapshot(self) -> PlanSnapshot:
        state = self._state
        return PlanSnapshot(
            plan_id=self._input.plan_id,
            status=state.status,
            contributed=state.contributed,
            late_fees_paid=state.late_fees_paid,
            contributions_paid=sum(1 for c in state.contributions if c.status == "paid"),
            contributions_overdue=sum(1 for c in state.contributions if c.status == "overdue"),
            award_loan_id=state.award_loan_id,
            refunded=state.refunded,
            reason=state.reason,
        )

    # -- plumbing -------------------------------------------------------------------------------------
    def _details(self, now: str) -> str:
        state, input = self._state, self._input
        paid = sum(1 for c in state.contributions if c.status == "paid")
        return (
            f"**{state.status}**: {paid} of {len(state.contributions)} contributions paid, "
            f"{state.contributed:.2f} of {input.asset_price:.2f}; {now}"
        )

    async def _call(self, activity: Callable[[PlanActivities, Input], Result], arg: Input, *, summary: str) -> Result:
        return await workflow.execute_activity_method(
            activity,
            arg,
            retry_policy=DB_RETRY,
            summary=summary,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
        )
