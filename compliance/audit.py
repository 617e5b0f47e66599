"""The audit log: an append-only hash chain per loan, written in the database transaction
of the change it records.

Each record's hash covers its content and the previous record's hash, so changing,
removing or reordering any record breaks every hash after it; `verify_chain` finds the
first record that does not match. Records are keyed by business facts (`event_key`): an
activity that is retried after its first attempt committed finds its record and writes
nothing. Appends to one loan's chain are serialized by the loan row's lock (FOR NO KEY
UPDATE: it does not conflict with the foreign-key locks that postings and investments
take on the same row, so it adds no deadlock).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio import activity

from core.db import loan_lock_held, lock_loan_row
from core.errors import NotFound
from models.loans import LoanRequest
from models.records import AuditRecord

SYSTEM = "system"


def canonical(value: Any) -> Any:
    """The JSON form a record is hashed and stored in: exactly what JSONB gives back, so a
    hash computed before the insert matches one computed from the stored row."""
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        raise TypeError("audit details carry no floats: use Decimal or str")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def record_hash(
    *,
    prev_hash: str | None,
    loan_id: uuid.UUID,
    event_key: str,
    actor_id: uuid.UUID | None,
    actor_role: str,
    action: str,
    details: dict,
    note: str | None,
    created_at: datetime,
) -> str:
    content = {
        "prev_hash": prev_hash,
        "loan_id": str(loan_id),
        "event_key": event_key,
        "actor_id": str(actor_id) if actor_id else None,
        "actor_role": actor_role,
        "action": action,
        "details": details,
        "note": note,
        "created_at": created_at.astimezone(UTC).isoformat(),
    }
    encoded = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


def hash_of(record: AuditRecord) -> str:
    return record_hash(
        prev_hash=record.prev_hash,
        loan_id=record.loan_id,
        event_key=record.event_key,
        actor_id=record.actor_id,
        actor_role=record.actor_role,
        action=record.action,
        details=record.details,
        note=record.note,
        created_at=record.created_at,
    )


def workflow_ref() -> dict[str, Any] | None:
    """Where in the loan's workflow history this change was made, when it is made by an
    activity: the trail joins it to the history's event ids."""
    try:
        info = activity.info()
    except RuntimeError:
        return None
    return {
        "workflow_id": info.workflow_id,
        "run_id": info.workflow_run_id,
        "activity_id": info.activity_id,
        "activity_type": info.activity_type,
        "attempt": info.attempt,
    }


def lock_loan(session: Session, loan_id: uuid.UUID) -> uuid.UUID | None:
    """Step 1 of the lock order (ledger/postings.py): the loan's row, FOR NO KEY UPDATE, which
    does not wait on the foreign-key locks of rows being written for this loan. Returns the
    loan's id, None if there is no such loan."""
    if loan_lock_held(session, loan_id):
        return loan_id
    query = select(LoanRequest.id).where(LoanRequest.id == loan_id).with_for_update(key_share=True)
    locked: uuid.UUID | None = lock_loan_row(session, query, loan_id)
    return locked


def append_audit(
    session: Session,
    loan_id: uuid.UUID,
    event_key: str,
    action: str,
    *,
    actor_id: uuid.UUID | None = None,
    actor_role: str = SYSTEM,
    details: dict[str, Any] | None = None,
    note: str | None = None,
) -> AuditRecord:
    """Appends one record to the loan's chain in the caller's transaction (never commits).
    The same event_key again returns the record already there."""
    if lock_loan(session, loan_id) is None:
        raise NotFound(f"no loan {loan_id}")
    # One round trip: the record this key made already, if any, and the chain's last hash.
    existing_id, prev_hash = session.execute(
        select(
            select(AuditRecord.id)
            .where(AuditRecord.loan_id == loan_id, AuditRecord.event_key == event_key)
            .limit(1)
            .scalar_subquery(),
            select(AuditRecord.record_hash)
            .where(AuditRecord.loan_id == loan_id)
            .order_by(AuditRecord.id.desc())
            .limit(1)
            .scalar_subquery(),
        )
    ).one()
    if existing_id is not None:
        return session.get_one(AuditRecord, existing_id)
    body = canonical(dict(details or {}))
    ref = workflow_ref()
    if ref is not None:
        body.setdefault("workflow", ref)
    # Microseconds, as PostgreSQL keeps them: the stored time hashes the same.
    created_at = datetime.now(UTC)
    record = AuditRecord(
        loan_id=loan_id,
        event_key=event_key,
        actor_id=actor_id,
        actor_role=actor_role,
        action=action,
        details=body,
        note=note,
        prev_hash=prev_hash,
        created_at=created_at,
    )
    record.record_hash = record_hash(
        prev_hash=prev_hash,
        loan_id=loan_id,
        event_key=event_key,
        actor_id=actor_id,
        actor_role=actor_role,
        action=action,
        details=body,
        note=note,
        created_at=created_at,
    )
    session.add(record)
    session.flush()
    return record


def loan_records(session: Session, loan_id: uuid.UUID) -> list[AuditRecord]:
    return list(session.scalars(select(AuditRecord).where(AuditRecord.loan_id == loan_id).order_by(AuditRecord.id)))


@dataclass(frozen=True)
class ChainCheck:
    intact: bool
    records: int
    head_hash: str | None
    first_broken_id: int | None = None
    problem: str | None = None


def verify_chain(records: list[AuditRecord]) -> ChainCheck:
    """Recomputes every hash in order: the first record whose content or link does not
    match is named."""
    prev: str | None = None
    for record in records:
        if record.prev_hash != prev:
            return ChainCheck(
                False,
                len(records),
                None,
                record.id,
                "its link to the previous record does not match (a record before it was changed, removed or inserted)",
            )
        if hash_of(record) != record.record_hash:
            return ChainCheck(
                False,
                len(records),
                None,
                record.id,
                "its content does not match its hash (it was changed after it was written)",
            )
        prev = record.record_hash
    return ChainCheck(True, len(records), prev)
