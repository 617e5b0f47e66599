"""A loan's trail for compliance: the audit chain in order, each record joined to the
workflow history events of the activity that wrote it (scheduled, started, closed), and the
chain's check. Read-only: nothing here writes.

Each reader sees the people in it by need to know (compliance/need_to_know.py): operators
and compliance, everyone's email and id; a borrower, their own, and of everyone else a role
and a pseudonym, in the actor columns and inside every step's details. The steps are built
here once for both the JSON trail and its PDF. A redacted step's details no longer hash to
its record_hash: the chain's check (`check`) is made on the records as stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.client import Client

from compliance.audit import ChainCheck, loan_records, verify_chain
from compliance.need_to_know import People, Reader
from documents.store import DocumentStore
from models.loans import LoanRequest
from models.records import Document


@dataclass
class TrailStep:
    seq: int
    id: int
    at: str
    actor_id: uuid.UUID | None
    actor_role: str
    actor_email: str | None
    actor_pseudonym: str | None
    action: str
    note: str | None
    event_key: str
    details: dict[str, Any]
    prev_hash: str | None
    record_hash: str
    history: dict[str, Any] | None = None


@dataclass
class Trail:
    loan: LoanRequest
    steps: list[TrailStep]
    check: ChainCheck
    runs: list[str] = field(default_factory=list)
    history_available: bool = False


def read_trail(session: Session, loan: LoanRequest, reader: Reader) -> Trail:
    """The loan's trail as `reader` may see it (the chain's check is the stored records')."""
    records = loan_records(session, loan.id)
    people = People(session, reader, [r.actor_id for r in records], [(r.details, r.note, r.event_key) for r in records])
    steps = [
        TrailStep(
            seq=n,
            id=r.id,
            at=r.created_at.isoformat(),
            actor_id=people.id(r.actor_id),
            actor_role=r.actor_role,
            actor_email=people.email(r.actor_id),
            actor_pseudonym=people.name(r.actor_id),
            action=r.action,
            note=people.redact(r.note),
            event_key=people.redact(r.event_key),
            details=people.redact(r.details),
            prev_hash=r.prev_hash,
            record_hash=r.record_hash,
        )
        for n, r in enumerate(records, start=1)
    ]
    runs: list[str] = []
    for r in records:  # the workflow's ids name no person: read from the stored records
        run_id = (r.details.get("workflow") or {}).get("run_id")
        if run_id and run_id not in runs:
            runs.append(run_id)
    return Trail(loan=loan, steps=steps, check=verify_chain(records), runs=runs)


async def _activity_events(client: Client, workflow_id: str, run_id: str) -> dict[str, dict[str, int]]:
    """activity id -> its scheduled, started and closing event ids in this run's history."""
    by_activity: dict[str, dict[str, int]] = {}
    by_scheduled: dict[int, dict[str, int]] = {}
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    async for event in handle.fetch_history_events():
        kind = event.WhichOneof("attributes")
        if kind == "activity_task_scheduled_event_attributes":
            ids = {"scheduled_event_id": event.event_id}
            by_activity[event.activity_task_scheduled_event_attributes.activity_id] = ids
            by_scheduled[event.event_id] = ids
        elif kind == "activity_task_started_event_attributes":
            ids = by_scheduled.get(event.activity_task_started_event_attributes.scheduled_event_id)
            if ids is not None:
                ids["started_event_id"] = event.event_id
        elif kind in (
            "activity_task_completed_event_attributes",
            "activity_task_failed_event_attributes",
            "activity_task_timed_out_event_attributes",
            "activity_task_canceled_event_attributes",
        ):
            ids = by_scheduled.get(getattr(event, kind).scheduled_event_id)
            if ids is not None:
                ids["closed_event_id"] = event.event_id
    return by_activity


async def join_history(trail: Trail, client: Client) -> Trail:
    """Adds to each step written by an activity the ids of its events in the workflow
    history (a loan spans several runs: continue-as-new). Leaves the steps as they are if
    the history cannot be read (Temporal down, or the history expired from retention)."""
    workflow_id = trail.loan.workflow_id
    if not workflow_id:
        return trail
    events: dict[str, dict[str, dict[str, int]]] = {}
    try:
        for run_id in trail.runs:
            events[run_id] = await _activity_events(client, workflow_id, run_id)
    except Exception:  # the trail stands on the audit log alone; history ids are a join
        return trail
    for step in trail.steps:
        ref = step.details.get("workflow")
        if not ref:
            continue
        ids = events.get(ref.get("run_id"), {}).get(ref.get("activity_id"), {})
        step.history = {
            "workflow_id": ref.get("workflow_id"),
            "run_id": ref.get("run_id"),
            "activity_type": ref.get("activity_type"),
            "activity_id": ref.get("activity_id"),
            "attempt": ref.get("attempt"),
            **ids,
        }
    trail.history_available = True
    return trail


@dataclass(frozen=True)
class DocumentCheck:
    id: uuid.UUID
    kind: str
    sha256: str
    intact: bool


def check_documents(session: Session, store: DocumentStore, loan_id: uuid.UUID) -> list[DocumentCheck]:
    """Each registered document of the loan is in the store with the bytes it was registered with."""
    documents = session.scalars(
        select(Document).where(Document.loan_id == loan_id).order_by(Document.created_at, Document.id)
    )
    return [DocumentCheck(d.id, d.kind, d.sha256, store.intact(d.sha256)) for d in documents]
