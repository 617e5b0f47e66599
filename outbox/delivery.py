"""Delivering the outbox to Temporal: start a loan's workflow, wake a loan whose borrower's
money arrived. Each delivery is idempotent on Temporal's side (a workflow id started once,
a signal a loan may get twice), so a message delivered again after a lost acknowledgement
changes nothing. (A delivery that outlives its lease may be made twice: harmless, for
the same reason.)

The API delivers what it has just written at once (the usual case: no delay); the worker
drains the rest every few seconds (`drain_forever`), so a message written while Temporal
was unreachable arrives once it is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from core.db import unit_of_work
from core.errors import PlatformError
from models.loan_workflow import FundsArrived, LoanWorkflowInput
from models.plan_workflow import PlanFundsArrived, PlanWorkflowInput
from models.search_attributes import BORROWER_ID, LOAN_STATUS, PRODUCT
from outbox.messages import Claimed, claim, mark_delivered, put_back

log = logging.getLogger("outbox")

DRAIN_EVERY_SECONDS = 2.0
# A hung Temporal costs a delivery this long, not a request or the drain loop forever.
RPC_TIMEOUT = timedelta(seconds=5)
# Messages claimed per round: delivered one by one well within their lease (outbox/messages.py).
BATCH = 20


def start_loan_payload(workflow_input: LoanWorkflowInput, task_queue: str) -> dict:
    return {"input": workflow_input.model_dump(mode="json"), "task_queue": task_queue}


async def _start_loan(client: Client, message: Claimed) -> None:
    from workflows.loan import LoanWorkflow

    wf_input = LoanWorkflowInput.model_validate(message.payload["input"])
    try:
        await client.start_workflow(
            LoanWorkflow.run,
            wf_input,
            id=message.workflow_id,
            task_queue=message.payload["task_queue"],
            # Started once, ever: a second delivery (running or ended) is not a second loan.
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(LOAN_STATUS, "pending"),
                    SearchAttributePair(BORROWER_ID, str(wf_input.borrower_id)),
                    SearchAttributePair(PRODUCT, wf_input.terms.product_code),
                ]
            ),
            static_summary=f"Loan {wf_input.amount:.2f} {wf_input.terms.currency}, {wf_input.term_months} months, "
            f"product {wf_input.terms.product_code} v{wf_input.terms.product_version}",
            rpc_timeout=RPC_TIMEOUT,
        )
    except WorkflowAlreadyStartedError:
        pass  # started by an earlier delivery, and it has ended since


async def _funds_arrived(client: Client, message: Claimed) -> None:
    from workflows.loan import LoanWorkflow

    try:
        await client.get_workflow_handle(message.workflow_id).signal(
            LoanWorkflow.funds_arrived, FundsArrived.model_validate(message.payload), rpc_timeout=RPC_TIMEOUT
        )
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        # The loan's workflow has ended (repaid, defaulted): nobody to wake.


def start_plan_payload(workflow_input: PlanWorkflowInput, task_queue: str) -> dict:
    return {"input": workflow_input.model_dump(mode="json"), "task_queue": task_queue}


async def _start_plan(client: Client, message: Claimed) -> None:
    from workflows.purchase_plan import PurchasePlanWorkflow

    wf_input = PlanWorkflowInput.model_validate(message.payload["input"])
    try:
        await client.start_workflow(
            PurchasePlanWorkflow.run,
            wf_input,
            id=message.workflow_id,
            task_queue=message.payload["task_queue"],
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=f"Programmed purchase: {wf_input.contribution_months} contributions of "
            f"{wf_input.monthly_contribution:.2f} toward {wf_input.asset_price:.2f} {wf_input.terms.currency}, "
            f"product {wf_input.terms.product_code} v{wf_input.terms.product_version}",
            rpc_timeout=RPC_TIMEOUT,
        )
    except WorkflowAlreadyStartedError:
        pass


async def _plan_funds_arrived(client: Client, message: Claimed) -> None:
    from workflows.purchase_plan import PurchasePlanWorkflow

    try:
        await client.get_workflow_handle(message.workflow_id).signal(
            PurchasePlanWorkflow.funds_arrived,
            PlanFundsArrived.model_validate(message.payload),
            rpc_timeout=RPC_TIMEOUT,
        )
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise


DELIVER: dict[str, Callable] = {
    "start_loan_workflow": _start_loan,
    "funds_arrived": _funds_arrived,
    "start_plan_workflow": _start_plan,
    "plan_funds_arrived": _plan_funds_arrived,
}


async def deliver(
    client_of: Callable, session_factory: sessionmaker[Session], ids: list[int] | None = None, limit: int = BATCH
) -> int:
    """Claims due messages (or exactly `ids`) and delivers them; what fails is put back for a
    later round. `client_of` is an async callable returning the Temporal client (so an
    unreachable Temporal is one more failed delivery, not an error here). Returns how many
    were delivered."""

    def claim_now() -> list[Claimed]:
        with unit_of_work(session_factory) as session:
            return claim(session, ids=ids, limit=limit)

    def finish(message: Claimed, error: str | None) -> None:
        with unit_of_work(session_factory) as session:
            if error is None:
                mark_delivered(session, message.id)
            else:
                put_back(session, message, error)

    messages = await asyncio.to_thread(claim_now)
    delivered = 0
    for n, message in enumerate(messages):
        try:
            client = await client_of()
            await DELIVER[message.kind](client, message)
        except Exception as error:  # delivery failed this time: the message waits for the next round
            log.warning("outbox message %s (%s) not delivered yet: %s", message.id, message.kind, error)
            unreachable = isinstance(error, PlatformError) or (
                isinstance(error, RPCError)
                and error.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)
            )
            # Temporal unreachable: the rest of the batch waits too, without an RPC each.
            for waiting in messages[n:] if unreachable else [message]:
                await asyncio.to_thread(finish, waiting, f"{type(error).__name__}: {error}")
            if unreachable:
                break
            continue
        await asyncio.to_thread(finish, message, None)
        delivered += 1
    return delivered


async def drain_forever(client: Client, session_factory: sessionmaker[Session], stop: asyncio.Event) -> None:
    """The worker's loop: every DRAIN_EVERY_SECONDS, deliver what is due, until `stop`."""

    async def client_of() -> Client:
        return client

    while not stop.is_set():
        try:
            while await deliver(client_of, session_factory) == BATCH:
                pass  # a backlog: keep going
        except Exception as error:  # the database is down: the next round tries again
            log.warning("outbox round failed: %s", error)
        try:
            await asyncio.wait_for(stop.wait(), DRAIN_EVERY_SECONDS)
        except TimeoutError:
            pass
