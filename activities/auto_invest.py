"""Auto-invest activities: plan a run (database), then place its investments, each through
the loan workflow's `invest` update as a manual investment, recording what came of each.

The plan stays in the database (allocations of the run, outcome "planned"), not in the
workflow's history: a run over 10,000 rules can plan tens of thousands of investments,
beyond what one payload may carry."""

from __future__ import annotations

import asyncio

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from activities.errors import business_errors_are_final
from core.db import unit_of_work
from investing.auto_invest import PlannedPlacement, outcome_counts, plan_run, planned_placements, record_outcomes
from models.auto_invest_io import AutoInvestPlan, PlaceAutoInvestmentsInput, PlacementCounts, PlanAutoInvestInput
from models.loan_workflow import InvestmentRequest

# Updates in flight per run: the server takes a handful per workflow at once.
PLACING_CONCURRENCY = 8
# Outcomes are written to the database in batches of this many.
RECORD_EVERY = 200


class AutoInvestActivities:
    def __init__(self, session_factory: sessionmaker[Session], client: Client) -> None:
        self._session_factory = session_factory
        self._client = client

    @activity.defn(name="plan_auto_investments")
    @business_errors_are_final
    def plan_auto_investments(self, input: PlanAutoInvestInput) -> AutoInvestPlan:
        with unit_of_work(self._session_factory) as session:
            run = plan_run(session, input.run_key, input.loan_ids, input.at)
        return AutoInvestPlan(
            run_no=run.run_no,
            planned=sum(1 for p in run.planned if p.amount > 0),
            not_allocated=sum(1 for p in run.planned if p.amount <= 0),
        )

    def _planned(self, run_no: int) -> list[PlannedPlacement]:
        with self._session_factory() as session:
            return planned_placements(session, run_no)

    def _record(self, outcomes: list[tuple]) -> None:
        with unit_of_work(self._session_factory) as session:
            record_outcomes(session, outcomes)

    @activity.defn(name="place_auto_investments")
    async def place_auto_investments(self, input: PlaceAutoInvestmentsInput) -> PlacementCounts:
        """Sends each planned investment to its loan workflow's `invest` update. The update
        id is the investment's, so a retried activity never invests twice; the workflow's
        validator and the ledger refuse what no longer fits (the loan filled up, the money
        went elsewhere, the annual limit). Database work runs on threads, off the loop."""
        # (imported here: the loan workflow starts auto-invest runs, whose module imports this one)
        from workflows.loan import LoanWorkflow

        placements = await asyncio.to_thread(self._planned, input.run_no)
        gate = asyncio.Semaphore(PLACING_CONCURRENCY)
        pending: list[tuple] = []
        done = 0

        async def flush() -> None:
            batch = pending[:]
            pending.clear()
            if batch:
                await asyncio.to_thread(self._record, batch)

        async def place(item: PlannedPlacement) -> None:
            nonlocal done
            async with gate:
                handle = self._client.get_workflow_handle(item.workflow_id)

                try:
                    await handle.execute_update(
                        LoanWorkflow.invest,
                        InvestmentRequest(
                            investment_id=item.investment_id,
                            investor_id=item.investor_id,
                            amount=item.amount,
                            loan_id=item.loan_id,
                        ),
                        id=f"investment-{item.investment_id}",
                    )
                    pending.append((item.investment_id, "placed", None))
                except WorkflowUpdateFailedError as error:
                    cause = error.cause
                    pending.append(
                        (
                            item.investment_id,
                            "refused",
                            f"{getattr(cause, 'type', None) or type(cause).__name__}: {cause}",
                        )
                    )
                except RPCError as error:  # the loan's workflow is gone (it moved on)
                    pending.append((item.investment_id, "refused", f"{error.status.name}: {error.message}"))
                done += 1
                activity.heartbeat(done)
                if len(pending) >= RECORD_EVERY:
                    await flush()

        await asyncio.gather(*(place(p) for p in placements))
        await flush()
        # From the database: the whole run's outcomes, earlier attempts included.
        totals = await asyncio.to_thread(self._counts, input.run_no)
        return PlacementCounts(placed=totals.get("placed", 0), refused=totals.get("refused", 0))

    def _counts(self, run_no: int) -> dict[str, int]:
        with self._session_factory() as session:
            return outcome_counts(session, run_no)
