"""A plan's trail: an append-only hash chain per plan, like a loan's (compliance/audit.py),
written in the database transaction of the change it records. Compliance reads a plan step
by step from its contributions to its award (or cancellation); an award event's entries,
seed and outcome are on every entrant's trail, so the draw can be decided again from them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from compliance.audit import SYSTEM, ChainCheck, canonical, record_hash, workflow_ref
from core.db import limit_idle_in_transaction
from core.errors import NotFound
from models.plans import PlanRecord, PurchasePlan


def lock_plan(session: Session, plan_id: uuid.UUID) -> PurchasePlan:
    """The plan's row, FOR UPDATE: every change of a plan (its money included) takes it
    first, before any ledger account (the lock order of ledger/postings.py, with the plan in
    the loan's place)."""
    limit_idle_in_transaction(session)
    plan = session.get(PurchasePlan, plan_id, with_for_update=True, populate_existing=True)
    if plan is None:
        raise NotFound(f"no plan {plan_id}")
    return plan


def append_plan_record(
    session: Session,
    plan_id: uuid.UUID,
    event_key: str,
    action: str,
    *,
    actor_id: uuid.UUID | None = None,
    actor_role: str = SYSTEM,
    details: dict[str, Any] | None = None,
    note: str | None = None,
) -> PlanRecord:
    """Appends to the plan's chain (the caller holds the plan's lock); the same event_key
    again returns the record already there."""
    existing = session.scalars(
        select(PlanRecord).where(PlanRecord.plan_id == plan_id, PlanRecord.event_key == event_key)
    ).first()
    if existing is not None:
        return existing
    prev_hash = session.scalar(
        select(PlanRecord.record_hash).where(PlanRecord.plan_id == plan_id).order_by(PlanRecord.id.desc()).limit(1)
    )
    body = canonical(dict(details or {}))
    ref = workflow_ref()
    if ref is not None:
        body.setdefault("workflow", ref)
    created_at = datetime.now(UTC)
    record = PlanRecord(
        plan_id=plan_id,
        event_key=event_key,
        actor_id=actor_id,
        actor_role=actor_role,
        action=action,
        details=body,
        note=note,
        prev_hash=prev_hash,
        created_at=created_at,
    )
    record.record_hash = _hash(record)
    session.add(record)
    session.flush()
    return record


def _hash(record: PlanRecord) -> str:
    # The chain's subject id goes where a loan's id goes in a loan's records.
    return record_hash(
        prev_hash=record.prev_hash,
        loan_id=record.plan_id,
        event_key=record.event_key,
        actor_id=record.actor_id,
        actor_role=record.actor_role,
        action=record.action,
        details=record.details,
        note=record.note,
        created_at=record.created_at,
    )


def plan_records(session: Session, plan_id: uuid.UUID) -> list[PlanRecord]:
    return list(session.scalars(select(PlanRecord).where(PlanRecord.plan_id == plan_id).order_by(PlanRecord.id)))


def verify_plan_chain(records: list[PlanRecord]) -> ChainCheck:
    prev: str | None = None
    for record in records:
        if record.prev_hash != prev:
            return ChainCheck(False, len(records), None, record.id, "its link to the previous record does not match")
        if _hash(record) != record.record_hash:
            return ChainCheck(False, len(records), None, record.id, "its content does not match its hash")
        prev = record.record_hash
    return ChainCheck(True, len(records), prev)
