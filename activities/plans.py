"""The programmed purchase's activities: each one database transaction (plans/money.py,
plans/award_events.py), idempotent by its business key, blocking code on the worker's
thread pool."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.errors import business_errors_are_final
from activities.heartbeat import heartbeating
from core.db import unit_of_work
from models.plan_workflow import (
    AwardEventInput,
    AwardEventResult,
    AwardPlanInput,
    AwardPlanResult,
    CancelPlanInput,
    CancelPlanResult,
    CollectContributionInput,
    CollectContributionResult,
    ContributionOverdue,
    StartPlanInput,
)
from plans import award_events, money


class PlanActivities:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    @activity.defn(name="start_plan")
    @business_errors_are_final
    @heartbeating
    def start_plan(self, input: StartPlanInput) -> None:
        with unit_of_work(self._session_factory) as session:
            money.start_plan(session, input)

    @activity.defn(name="collect_contribution")
    @business_errors_are_final
    @heartbeating
    def collect_contribution(self, input: CollectContributionInput) -> CollectContributionResult:
        with unit_of_work(self._session_factory) as session:
            return money.collect_contribution(session, input)

    @activity.defn(name="mark_contribution_overdue")
    @business_errors_are_final
    @heartbeating
    def mark_contribution_overdue(self, input: ContributionOverdue) -> None:
        with unit_of_work(self._session_factory) as session:
            money.mark_contribution_overdue(session, input)

    @activity.defn(name="cancel_plan")
    @business_errors_are_final
    @heartbeating
    def cancel_plan(self, input: CancelPlanInput) -> CancelPlanResult:
        with unit_of_work(self._session_factory) as session:
            return money.cancel_plan(session, input)

    @activity.defn(name="award_plan")
    @business_errors_are_final
    @heartbeating
    def award_plan(self, input: AwardPlanInput) -> AwardPlanResult:
        with unit_of_work(self._session_factory) as session:
            return money.award_plan(session, input)

    @activity.defn(name="hold_award_event")
    @business_errors_are_final
    @heartbeating
    def hold_award_event(self, input: AwardEventInput) -> AwardEventResult:
        with unit_of_work(self._session_factory) as session:
            return award_events.hold_award_event(session, input, datetime.now(UTC))
