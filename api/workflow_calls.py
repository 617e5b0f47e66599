"""Calling loan workflows from the API: updates that always end in an answer.

- The server allows a handful of updates in flight per workflow; a funding rush must still
  get 201/409/422. Each API process keeps at most IN_FLIGHT_PER_LOAN updates in flight per
  loan, and an update refused for the server's limit is retried with backoff (the same
  update id, so it is never applied twice).
- Business refusals (domain/refusals.py, raised by the workflow) map to 409/422 by one table.
- A loan whose workflow has ended (it moved on) answers 409.
- An update whose answer did not come back by the call's deadline (BUSY_RETRY_SECONDS, the
  whole call's, waiting for a slot included: maybe done; if accepted, still to be done when
  the worker recovers; if only admitted, maybe dropped) is never reported as "nothing was
  done": the API says the outcome is unknown (503 outcome-unknown), and the same request
  with the same Idempotency-Key (the same update id) learns the real one.
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from core.errors import (
    AnnualLimitExceeded,
    Conflict,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidRequest,
    NotFound,
    OutcomeUnknown,
    PlatformError,
    ServiceUnavailable,
)
from core.temporal_client import UNSEALED_PAYLOAD
from domain.refusals import (
    AgreementsPending,
    AgreementsRefused,
    EarlyRepaymentUnaffordable,
    InvalidInvestment,
    LoanNotActive,
    LoanNotFunding,
    NotAwaitingReview,
    NotThisLoan,
    NotTradeable,
    OverFunding,
    TryAgain,
)
from workflows.loan import LoanWorkflow

Request = TypeVar("Request")
Answer = TypeVar("Answer")

log = logging.getLogger("api")

IN_FLIGHT_PER_LOAN = 8
# A request that gets one of those slots with less time than this left is not sent.
LEAST_ATTEMPT_SECONDS = 2.0
# How long the API waits for an update's answer (a slot among the loan's in-flight updates
# included), retrying one the server is too busy to take; past it the answer is 503 (outcome
# unknown if the update may have been taken in).
BUSY_RETRY_SECONDS = 120.0
# How long a trade waits for its loan's agreements (rendering beside the repayment, seconds
# with a renderer free), sent again now and then, before the answer is 409 AgreementsPending.
AGREEMENTS_WAIT_SECONDS = 15.0


# The one table from a loan's refusals (and the ledger's, passed on by the workflow) to the
# API's problems: the refusal's failure type -> the problem+json it becomes.
REFUSAL_PROBLEMS: dict[str, type[PlatformError]] = {
    LoanNotFunding.failure_type: Conflict,
    OverFunding.failure_type: Conflict,
    LoanNotActive.failure_type: Conflict,
    NotAwaitingReview.failure_type: Conflict,
    NotTradeable.failure_type: Conflict,
    AgreementsPending.failure_type: Conflict,
    AgreementsRefused.failure_type: Conflict,
    InvalidInvestment.failure_type: InvalidRequest,
    # the early repayment's refusal, and the ledger's inside reserve_investment (the investor's answer)
    EarlyRepaymentUnaffordable.failure_type: InsufficientFunds,
    AnnualLimitExceeded.__name__: AnnualLimitExceeded,
    Conflict.__name__: Conflict,
    InvalidRequest.__name__: InvalidRequest,
    IdempotencyConflict.__name__: InvalidRequest,
    # The loan's worker cannot read the request (a key not configured there yet): nothing
    # was done, send again once it can.
    UNSEALED_PAYLOAD: ServiceUnavailable,
    NotThisLoan.failure_type: Conflict,
    # the market's settlement: the listing is not this loan's (or gone)
    NotFound.__name__: NotFound,
    # a plan cancelled once awarded or cancelled (workflows/purchase_plan.py)
    "PlanNotSaving": Conflict,
}

_gates: weakref.WeakValueDictionary[str, asyncio.Semaphore] = weakref.WeakValueDictionary()


def _gate(workflow_id: str) -> asyncio.Semaphore:
    gate = _gates.get(workflow_id)
    if gate is None:
        gate = asyncio.Semaphore(IN_FLIGHT_PER_LOAN)
        _gates[workflow_id] = gate
    return gate


def business_error(cause: BaseException | None) -> PlatformError | None:
    """The problem+json a refusal from a loan workflow becomes, by REFUSAL_PROBLEMS; None for
    anything else (a bug, an outage: not the caller's to fix)."""
    if not isinstance(cause, ApplicationError) or cause.type not in REFUSAL_PROBLEMS:
        return None
    problem = REFUSAL_PROBLEMS[cause.type]
    if problem in (InsufficientFunds, AnnualLimitExceeded):  # the figures the caller needs
        details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
        return problem(cause.message, **{k: v for k, v in details.items() if k != "status"})
    return problem(cause.message, reason=cause.type)


def _busy(error: RPCError) -> bool:
    return error.status in (RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.UNAVAILABLE) or (
        "in-flight" in error.message or "limit" in error.message.lower()
    )


def _too_busy() -> ServiceUnavailable:
    """Nothing was sent (or the server refused it unadmitted): sending again is safe."""
    return ServiceUnavailable("the loan is too busy right now; nothing was done, send again")


def _ended() -> Conflict:
    return Conflict("the loan's workflow has ended; it no longer takes this request", reason="WorkflowEnded")


async def _outcome_of_ended(
    handle: WorkflowHandle, update_id: str, update: Callable, resendable: bool, seconds: float
) -> Any:
    """The outcome of `update_id` in a loan whose workflow has ended; 409 if the loan never
    took that update; outcome unknown if Temporal cannot say within `seconds`."""
    try:
        return await asyncio.wait_for(
            handle.get_update_handle_for(update, update_id).result(rpc_timeout=timedelta(seconds=seconds)), seconds
        )
    except TimeoutError:
        raise _outcome_unknown(resendable) from None
    except WorkflowUpdateFailedError as error:
        mapped = business_error(error.cause)
        if mapped is not None:
            raise mapped from None
        raise
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        raise _outcome_unknown(resendable) from None
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise _outcome_unknown(resendable) from None
    raise _ended()


def _outcome_unknown(resendable: bool) -> OutcomeUnknown:
    if resendable:
        return OutcomeUnknown(
            "the loan took the request but its answer did not come back in time; the outcome is unknown: "
            "send the same request again with the same Idempotency-Key to learn it (nothing is done twice)"
        )
    return OutcomeUnknown(
        "the loan took the request but its answer did not come back in time; the outcome is unknown and it "
        "may still be done: look before sending it again (with an Idempotency-Key a resend is always safe)"
    )


async def execute_loan_update(
    client: Client,
    workflow_id: str,
    update: Callable[[LoanWorkflow, Request], Awaitable[Answer]],
    arg: Request,
    *,
    update_id: str,
    resendable: bool = True,
    answer_from_ended: bool = False,
) -> Answer:
    """`resendable`: the caller's resend carries the same update id (an Idempotency-Key, or
    an id built from business facts); said in the answer when the outcome is unknown.
    `answer_from_ended`: an update that may end the loan (an early repayment, a decision):
    if the loan's workflow has ended, this update's own outcome in it is the answer."""
    handle = client.get_workflow_handle(workflow_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BUSY_RETRY_SECONDS
    agreements_deadline = loop.time() + AGREEMENTS_WAIT_SECONDS
    delay = 0.05
    maybe_admitted = False
    gate = _gate(workflow_id)
    try:
        # (waiting for a slot is part of the deadline: behind a loan whose worker is gone, each
        # slot is held until its own deadline)
        await asyncio.wait_for(gate.acquire(), max(deadline - loop.time(), 0.5))
    except TimeoutError:
        raise _too_busy() from None
    try:  # (the slot is released in one place: this try's finally)
        if deadline - loop.time() < LEAST_ATTEMPT_SECONDS:
            # (too little time left for an answer: sent now, it would most likely be "unknown")
            raise _too_busy()
        while True:
            left = max(deadline - loop.time(), 0.5)
            try:
                # The deadline is the whole call's: the SDK's rpc_timeout bounds each RPC only.
                # The server answers a long wait with the stage the update reached (admitted,
                # accepted) after its own poll interval (about 20 s), and the SDK then sends it
                # again, and waits for an accepted update's result with no deadline at all:
                # without this bound, a loan whose worker was gone held a request past 200 s.
                return await asyncio.wait_for(
                    handle.execute_update(update, arg, id=update_id, rpc_timeout=timedelta(seconds=left)), left
                )
            except WorkflowUpdateFailedError as error:
                refused_as = error.cause.type if isinstance(error.cause, ApplicationError) else None
                if refused_as == AgreementsPending.failure_type and loop.time() < agreements_deadline:
                    pass  # (a validator's refusal: nothing was admitted) sent again in a moment
                elif (mapped := business_error(error.cause)) is not None:
                    raise mapped from None
                elif refused_as == TryAgain.failure_type:
                    pass  # the workflow is moving to a new run: send again
                else:
                    raise
            except (WorkflowUpdateRPCTimeoutOrCancelledError, TimeoutError):
                maybe_admitted = True  # the same update id attaches to the one already admitted
            except RPCError as error:
                if error.status == RPCStatusCode.NOT_FOUND:
                    if answer_from_ended:
                        # If this very update ended it (an early repayment whose answer was
                        # lost), its outcome is in the history, and it is the answer.
                        return await _outcome_of_ended(
                            handle, update_id, update, resendable, min(10.0, max(deadline - loop.time(), 0.5))
                        )
                    raise _ended() from None
                if not _busy(error):
                    raise
                # Refused for the server's limits: not admitted. Cut off: who knows.
                maybe_admitted |= error.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)
            if loop.time() > deadline:
                if maybe_admitted:
                    raise _outcome_unknown(resendable)
                raise _too_busy()
            await asyncio.sleep(min(delay + random.uniform(0, delay), max(deadline - loop.time(), 0)))
            delay = min(delay * 2, 1.0)
    finally:
        gate.release()
