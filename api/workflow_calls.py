"""Calling loan workflows from the API: updates that always end in an answer.

- The server allows a handful of updates in flight per workflow; a funding rush must still
  get 201/409/422. Each API process keeps at most IN_FLIGHT_PER_LOAN updates in flight per
  loan, and an update refused for the server's limit is retried with backoff (the same
  update id, so it is never applied twice).
- Business refusals (ApplicationError types raised by the workflow) map to 409/422.
- A loan whose workflow has ended (it moved on) answers 409.
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from typing import Any

from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from core.errors import (
    AnnualLimitExceeded,
    Conflict,
    InsufficientFunds,
    InvalidRequest,
    PlatformError,
    ServiceUnavailable,
)
from models.loan_workflow import FundsArrived

log = logging.getLogger("api")

IN_FLIGHT_PER_LOAN = 8
# How long the API keeps retrying an update the server is too busy to take.
BUSY_RETRY_SECONDS = 120.0


CONFLICT_TYPES = {"LoanNotFunding", "OverFunding", "LoanNotActive", "NotAwaitingReview", "Conflict"}
INVALID_TYPES = {"InvalidInvestment", "InvalidRequest", "IdempotencyConflict"}

_gates: "weakref.WeakValueDictionary[str, asyncio.Semaphore]" = weakref.WeakValueDictionary()


def _gate(workflow_id: str) -> asyncio.Semaphore:
    gate = _gates.get(workflow_id)
    if gate is None:
        gate = asyncio.Semaphore(IN_FLIGHT_PER_LOAN)
        _gates[workflow_id] = gate
    return gate


def business_error(cause: BaseException | None) -> PlatformError | None:
    if not isinstance(cause, ApplicationError):
        return None
    details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
    extra = {k: v for k, v in details.items() if k != "status"}
    if cause.type == "InsufficientFunds":
        return InsufficientFunds(cause.message, **extra)
    if cause.type == "AnnualLimitExceeded":
        return AnnualLimitExceeded(cause.message, **extra)
    if cause.type in CONFLICT_TYPES:
        return Conflict(cause.message, reason=cause.type)
    if cause.type in INVALID_TYPES:
        return InvalidRequest(cause.message, reason=cause.type)
    return None


def _busy(error: RPCError) -> bool:
    return error.status in (RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.UNAVAILABLE) or (
        "in-flight" in error.message or "limit" in error.message.lower())


async def execute_loan_update(client: Client, workflow_id: str, update: str, arg: Any, *, update_id: str,
                              result_type: type) -> Any:
    handle = client.get_workflow_handle(workflow_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BUSY_RETRY_SECONDS
    delay = 0.05
    async with _gate(workflow_id):
        while True:
            try:
                return await handle.execute_update(update, arg, id=update_id, result_type=result_type)
            except WorkflowUpdateFailedError as error:
                mapped = business_error(error.cause)
                if mapped is not None:
                    raise mapped from None
                if isinstance(error.cause, ApplicationError) and error.cause.type == "TryAgain":
                    pass  # the workflow is moving to a new run: send again
                else:
                    raise
            except WorkflowUpdateRPCTimeoutOrCancelledError:
                pass  # the same update id attaches to the one already admitted
            except RPCError as error:
                if error.status == RPCStatusCode.NOT_FOUND:
                    raise Conflict("the loan's workflow has ended; it no longer takes this request",
                                   reason="WorkflowEnded") from None
                if not _busy(error):
                    raise
            if loop.time() > deadline:
                raise ServiceUnavailable("the loan is too busy right now; nothing was done, send again")
            await asyncio.sleep(delay + random.uniform(0, delay))
            delay = min(delay * 2, 1.0)


async def signal_funds_arrived(holder, workflow_ids: list[str], deposit_id) -> None:
    """Best effort: a loan that misses the signal still collects at its next wake-up."""
    if not workflow_ids:
        return
    try:
        client = await holder.get()
        for workflow_id in workflow_ids:
            try:
                await client.get_workflow_handle(workflow_id).signal("funds_arrived", FundsArrived(deposit_id=deposit_id))
            except RPCError as error:
                log.warning("could not signal %s: %s", workflow_id, error)
    except Exception as error:  # noqa: BLE001 - the deposit is confirmed either way
        log.warning("could not signal loans of deposit %s: %s", deposit_id, error)
