"""A loan's money operation, decided once whatever its attempts do.

Temporal may run an activity's attempts side by side: a first attempt stalled (a frozen
process, a GC pause, a slow disk) outlives its heartbeat timeout while a retry starts on
another worker. So an operation takes its idempotency decision under the lock it acts under:

1. lock the loan's row (every money operation of a loan takes it first: see the lock order
   in ledger/postings.py), in the operation's own database transaction;
2. look for the outcome recorded under the operation's key: found, it is the answer (the
   result, or the same refusal raised again), and nothing moves;
3. otherwise act, and record the outcome in the same transaction: the result, or the
   business refusal (committed, then raised), so that an attempt that wakes up later, when
   the wallet holds money again, finds the refusal instead of acting on its own.

An attempt that stalls while holding the lock is cut off by PostgreSQL
(idle_in_transaction_session_timeout, set before every money lock: core/db.py): its
transaction rolls back and the retry goes on. The attempts can never both act, never
conflict, never apply anything twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, sessionmaker

from core.db import unit_of_work
from core.errors import PlatformError
from loans.common import loan_row
from models.outcomes import OperationOutcome

R = TypeVar("R", bound=BaseModel | None)


def _error_classes() -> dict[str, type[PlatformError]]:
    found: dict[str, type[PlatformError]] = {}
    pending: list[type[PlatformError]] = [PlatformError]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return found


def _refusal_record(error: PlatformError) -> dict[str, Any]:
    return {"error": type(error).__name__, "detail": error.detail, "extra": error.extra}


def _refusal_from(record: dict[str, Any]) -> PlatformError:
    cls = _error_classes().get(record["error"], PlatformError)
    return cls(record["detail"], **record.get("extra", {}))


class _Refused:
    """A business refusal decided (or found) under the lock: the unit of work commits it,
    then run_once raises it."""

    def __init__(self, refusal: PlatformError) -> None:
        self.refusal = refusal


def run_once(
    session_factory: sessionmaker[Session],
    *,
    key: str,
    loan_id: uuid.UUID,
    operation: str,
    result_type: type[R],
    act: Callable[[Session], R],
) -> R:
    """`act` in one database transaction under the loan's lock, once per `key`: every other
    call with this key returns (or raises) what the first call that committed decided."""
    with unit_of_work(session_factory) as session:
        decided = _decide(session, key=key, loan_id=loan_id, operation=operation, result_type=result_type, act=act)
    if isinstance(decided, _Refused):  # recorded and committed: now the caller hears it
        raise decided.refusal
    return decided


def _decide(
    session: Session,
    *,
    key: str,
    loan_id: uuid.UUID,
    operation: str,
    result_type: type[R],
    act: Callable[[Session], R],
) -> R | _Refused:
    loan_row(session, loan_id, lock=True)
    done = session.get(OperationOutcome, key)
    if done is not None:
        if done.operation != operation:
            raise PlatformError(f"operation key {key!r} belongs to {done.operation}, not {operation}")
        if done.refusal is not None:
            return _Refused(_refusal_from(done.refusal))
        return _result(result_type, done.result)
    refusal: PlatformError | None = None
    try:
        with session.begin_nested():  # a refusal leaves nothing of the attempt behind
            result = act(session)
    except PlatformError as error:
        if not error.non_retryable:
            raise  # not a business answer (an outage): nothing recorded, Temporal retries
        refusal = error
    values: dict[str, Any] = {"key": key, "loan_id": loan_id, "operation": operation}
    if refusal is not None:
        values["refusal"] = _refusal_record(refusal)
    else:
        values["result"] = result.model_dump(mode="json") if result is not None else {}
    # Under the loan's lock nobody else records this key; ON CONFLICT only guards the rule.
    inserted = session.execute(
        pg_insert(OperationOutcome).values(**values).on_conflict_do_nothing(index_elements=["key"])
    ).rowcount
    if not inserted:
        raise PlatformError(f"operation key {key!r} was recorded by someone not holding the loan's lock")
    if refusal is not None:
        return _Refused(refusal)
    return result


def _result(result_type: type[R], stored: dict[str, Any] | None) -> R:
    if result_type is type(None):
        return None  # type: ignore[return-value]
    return result_type.model_validate(stored)  # type: ignore[union-attr]
