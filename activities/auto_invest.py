"""Auto-invest activities: plan a run (database), then place its investments, each through
the loan workflow's `invest` update as a manual investment (a market purchase: through its
`trade` update, as a manual purchase), recording what came of each.

The plan stays in the database (allocations of the run, outcome "planned"), not in the
workflow's history: a run over 10,000 rules can plan tens of thousands of investments,
beyond what one payload may carry."""

from __future__ import annotations

import asyncio

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.errors import business_errors_are_final
from core.db import unit_of_work
from core.errors import PlatformError, ServiceUnavailable
from investing.auto_invest import (
    Outcome,
    PlannedPlacement,
    outcome_counts,
    plan_run,
    planned_placements,
    record_outcomes,
    settled_trades,
)
from models.auto_invest_io import AutoInvestPlan, PlaceAutoInvestmentsInput, PlacementCounts, PlanAutoInvestInput
from models.loan_workflow import InvestmentRequest, TradeRequest, TradeSettled
from models.market import MarketTrade

# Updates in flight per run: the server takes a handful per workflow at once.
PLACING_CONCURRENCY = 8
# Outcomes are written to the database in batches of this many.
RECORD_EVERY = 200
# Well inside the activity's heartbeat timeout (workflows/auto_invest.py).
HEARTBEAT_EVERY_SECONDS = 10


class AutoInvestActivities:
    def __init__(self, session_factory: sessionmaker[Session], client: Client) -> None:
        self._session_factory = session_factory
        self._client = client

    @activity.defn(name="plan_auto_investments")
    @business_errors_are_final
    def plan_auto_investments(self, input: PlanAutoInvestInput) -> AutoInvestPlan:
        with unit_of_work(self._session_factory) as session:
            run = plan_run(session, input.run_key, input.loan_ids, input.at, input.listing_ids)
        return AutoInvestPlan(
            run_no=run.run_no,
            planned=sum(1 for p in run.planned if p.amount > 0),
            not_allocated=sum(1 for p in run.planned if p.amount <= 0),
        )

    def _planned(self, run_no: int) -> tuple[list[PlannedPlacement], list[Outcome]]:
        """What is left to place, and the outcomes of purchases that settled already (an
        earlier attempt whose answer was lost: the trade is never asked for again)."""
        with self._session_factory() as session:
            placements = planned_placements(session, run_no)
            done = settled_trades(session, [p.trade_id for p in placements if p.trade_id is not None])
        settled = [
            Outcome(p.allocation_id, "placed", _paid(done[p.trade_id]), done[p.trade_id].buyer_investment_id)
            for p in placements
            if p.trade_id in done
        ]
        return [p for p in placements if p.trade_id not in done], settled

    def _record(self, outcomes: list[Outcome]) -> None:
        with unit_of_work(self._session_factory) as session:
            record_outcomes(session, outcomes)

    @activity.defn(name="place_auto_investments")
    async def place_auto_investments(self, input: PlaceAutoInvestmentsInput) -> PlacementCounts:
        """Sends each planned investment to its loan workflow's `invest` update, and each
        planned purchase to its `trade` update, as the API sends a manual one
        (api/workflow_calls.py: a busy server or a loan moving to a new run is waited out).
        The update id is the investment's (the trade's), so a retried activity never invests
        (buys) twice. What the loan refuses (it filled up, the listing sold, the loan can no
        longer be traded, the money went elsewhere, the annual limit, the share of the loan)
        is recorded as refused; an outcome still unknown (Temporal did not answer) stays
        planned, and the activity fails after recording the rest, so its retry sends just
        those again under the same ids. Database work runs on threads, off the loop."""
        # (imported here: the loan workflow starts auto-invest runs, whose module imports this one)
        from api.workflow_calls import execute_loan_update
        from workflows.loan import LoanWorkflow

        placements, settled = await asyncio.to_thread(self._planned, input.run_no)
        gate = asyncio.Semaphore(PLACING_CONCURRENCY)
        pending: list[Outcome] = list(settled)
        unknown: list[str] = []
        done = 0

        async def flush() -> None:
            batch = pending[:]
            pending.clear()
            if batch:
                await asyncio.to_thread(self._record, batch)

        async def send(item: PlannedPlacement) -> Outcome:
            if item.listing_id is not None and item.trade_id is not None:
                traded: TradeSettled = await execute_loan_update(
                    self._client,
                    item.workflow_id,
                    LoanWorkflow.trade,
                    TradeRequest(
                        trade_id=item.trade_id,
                        listing_id=item.listing_id,
                        buyer_id=item.investor_id,
                        principal=item.amount,
                        loan_id=item.loan_id,
                        max_buyer_pays=item.max_cost,
                    ),
                    update_id=f"trade-{item.trade_id}",
                    answer_from_ended=True,
                )
                return Outcome(item.allocation_id, "placed", _paid(traded), traded.buyer_investment_id)
            assert item.investment_id is not None
            await execute_loan_update(
                self._client,
                item.workflow_id,
                LoanWorkflow.invest,
                InvestmentRequest(
                    investment_id=item.investment_id,
                    investor_id=item.investor_id,
                    amount=item.amount,
                    loan_id=item.loan_id,
                ),
                update_id=f"investment-{item.investment_id}",
            )
            return Outcome(item.allocation_id, "placed")

        async def place(item: PlannedPlacement) -> None:
            nonlocal done
            async with gate:
                try:
                    pending.append(await send(item))
                except ServiceUnavailable as error:  # busy past the wait, or the outcome unknown
                    unknown.append(f"{item.allocation_id}: {error.detail}")
                except PlatformError as error:  # the loan's refusal, or its workflow ended
                    pending.append(await asyncio.to_thread(self._refused, item, error))
                except Exception as error:  # anything else: not known to be refused, so sent again
                    # (caught here, so the other placements finish and are recorded first)
                    unknown.append(f"{item.allocation_id}: {type(error).__name__}: {error}")
                done += 1
                if len(pending) >= RECORD_EVERY:
                    await flush()

        async def keep_alive() -> None:  # (an update may wait out a busy server for minutes)
            while True:
                activity.heartbeat(done)
                await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)

        beat = asyncio.create_task(keep_alive())
        try:
            # Every placement runs to its end even if another fails (a database error while
            # recording): none is left sending updates behind a failed attempt.
            outcomes = await asyncio.gather(*(place(p) for p in placements), return_exceptions=True)
            failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        finally:
            beat.cancel()
            await flush()
        if failures:
            raise failures[0]
        if unknown:
            raise ApplicationError(
                f"{len(unknown)} placement(s) without an answer yet, sent again on retry: " + "; ".join(unknown[:5]),
                type="PlacementOutcomeUnknown",
            )
        # From the database: the whole run's outcomes, earlier attempts included.
        totals = await asyncio.to_thread(self._counts, input.run_no)
        return PlacementCounts(placed=totals.get("placed", 0), refused=totals.get("refused", 0))

    def _refused(self, item: PlannedPlacement, error: PlatformError) -> Outcome:
        """A refusal's outcome; but a purchase whose loan's workflow has ended may have
        settled before it did (its answer lost): the database says."""
        if item.trade_id is not None:
            with self._session_factory() as session:
                trade = settled_trades(session, [item.trade_id]).get(item.trade_id)
            if trade is not None:
                return Outcome(item.allocation_id, "placed", _paid(trade), trade.buyer_investment_id)
        kind = error.extra.get("reason") or type(error).__name__
        return Outcome(item.allocation_id, "refused", f"{kind}: {error.detail}")

    def _counts(self, run_no: int) -> dict[str, int]:
        with self._session_factory() as session:
            return outcome_counts(session, run_no)


def _paid(trade: TradeSettled | MarketTrade) -> str:
    """A market purchase's outcome detail: what it cost."""
    return f"bought for {trade.buyer_pays:.2f}: price {trade.price:.2f} + accrued interest {trade.accrued_interest:.2f}"
