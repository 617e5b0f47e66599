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
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from activities.errors import business_errors_are_final
from core.db import unit_of_work
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
        planned purchase to its `trade` update. The update id is the investment's (the
        trade's), so a retried activity never invests (buys) twice; the workflow's validator,
        the market's checks and the ledger refuse what no longer fits (the loan filled up,
        the listing sold, the loan can no longer be traded, the money went elsewhere, the
        annual limit). Database work runs on threads, off the loop."""
        # (imported here: the loan workflow starts auto-invest runs, whose module imports this one)
        from workflows.loan import LoanWorkflow

        placements, settled = await asyncio.to_thread(self._planned, input.run_no)
        gate = asyncio.Semaphore(PLACING_CONCURRENCY)
        pending: list[Outcome] = list(settled)
        done = 0

        async def flush() -> None:
            batch = pending[:]
            pending.clear()
            if batch:
                await asyncio.to_thread(self._record, batch)

        async def send(item: PlannedPlacement) -> Outcome:
            handle = self._client.get_workflow_handle(item.workflow_id)
            if item.listing_id is not None and item.trade_id is not None:
                traded: TradeSettled = await handle.execute_update(
                    LoanWorkflow.trade,
                    TradeRequest(
                        trade_id=item.trade_id,
                        listing_id=item.listing_id,
                        buyer_id=item.investor_id,
                        principal=item.amount,
                        loan_id=item.loan_id,
                    ),
                    id=f"trade-{item.trade_id}",
                )
                return Outcome(item.allocation_id, "placed", _paid(traded), traded.buyer_investment_id)
            assert item.investment_id is not None
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
            return Outcome(item.allocation_id, "placed")

        async def place(item: PlannedPlacement) -> None:
            nonlocal done
            async with gate:
                try:
                    pending.append(await send(item))
                except WorkflowUpdateFailedError as error:
                    pending.append(Outcome(item.allocation_id, "refused", _refusal(error.cause)))
                except RPCError as error:  # the loan's workflow is gone (it moved on)
                    pending.append(Outcome(item.allocation_id, "refused", f"{error.status.name}: {error.message}"))
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


def _paid(trade: TradeSettled | MarketTrade) -> str:
    """A market purchase's outcome detail: what it cost."""
    return f"bought for {trade.buyer_pays:.2f}: price {trade.price:.2f} + accrued interest {trade.accrued_interest:.2f}"


def _refusal(cause: BaseException | None) -> str:
    """Why the loan refused: the refusal's type, then its message (once, if it starts with it)."""
    kind = getattr(cause, "type", None) or type(cause).__name__
    text = str(cause)
    return text if text.startswith(f"{kind}:") else f"{kind}: {text}"
