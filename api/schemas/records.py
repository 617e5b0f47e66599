"""Responses of the documents and trail endpoints (read-only: there is nothing to send).

People by need to know (compliance/need_to_know.py): operators and compliance get every
person's email and id; anyone else gets their own, and of other people only a role and a
pseudonym ("investor-3f9a2c1d"), also where an id would appear inside `details`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from models.loan_status import LoanStatus


class DocumentOut(BaseModel):
    id: uuid.UUID
    kind: str
    subject_key: str
    loan_id: uuid.UUID | None
    owner_id: uuid.UUID | None = Field(description="null unless the reader may know the owner (themselves; staff)")
    owner_pseudonym: str | None = Field(description='the owner\'s role and pseudonym: "investor-3f9a2c1d"')
    owner_email: str | None = Field(description="null unless the reader may know the owner (themselves; staff)")
    sha256: str
    size_bytes: int
    content_type: str
    created_at: datetime
    url: str


class RegisterPage(BaseModel):
    items: list[DocumentOut]
    total: int = Field(description="documents that match, on every page")


class HistoryRefOut(BaseModel):
    workflow_id: str | None = None
    run_id: str | None = None
    activity_type: str | None = None
    activity_id: str | None = None
    attempt: int | None = None
    scheduled_event_id: int | None = None
    started_event_id: int | None = None
    closed_event_id: int | None = None


class TrailStepOut(BaseModel):
    seq: int
    id: int
    at: datetime
    actor_id: uuid.UUID | None = Field(description="null unless the reader may know the actor (themselves; staff)")
    actor_role: str
    actor_email: str | None = Field(description="null unless the reader may know the actor (themselves; staff)")
    actor_pseudonym: str | None = Field(description='the actor\'s role and pseudonym: "operator-5c0e19a4"')
    action: str
    note: str | None
    event_key: str
    details: dict[str, Any]
    prev_hash: str | None
    record_hash: str
    history: HistoryRefOut | None


class ChainCheckOut(BaseModel):
    intact: bool
    records: int
    head_hash: str | None
    first_broken_id: int | None
    problem: str | None


class TrailOut(BaseModel):
    loan_id: uuid.UUID
    workflow_id: str | None
    status: LoanStatus
    history_available: bool
    workflow_runs: list[str]
    chain: ChainCheckOut
    steps: list[TrailStepOut]


class DocumentCheckOut(BaseModel):
    id: uuid.UUID
    kind: str
    sha256: str
    intact: bool


class TrailVerificationOut(BaseModel):
    loan_id: uuid.UUID
    intact: bool
    chain: ChainCheckOut
    documents: list[DocumentCheckOut]
