"""What the document activities and the statements workflow take and give (no ORM here)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

# The documents' own task queue beside the platform's (worker.py runs a worker on each): on the
# platform's queue, agreements waiting for a renderer took the activity slots that scoring,
# investments and collections wait for (tests/test_documents_queue.py).
DOCUMENTS_QUEUE_SUFFIX = "-documents"


def documents_task_queue(task_queue: str) -> str:
    """The task queue of the documents that belong to work on `task_queue`."""
    return f"{task_queue}{DOCUMENTS_QUEUE_SUFFIX}"


class LoanAgreementsInput(BaseModel):
    loan_id: uuid.UUID


class LoanAgreementsResult(BaseModel):
    documents: int


class InvestorStatementsInput(BaseModel):
    # YYYY-MM; empty: the month before the one the workflow runs in (the Schedule's case).
    month: str | None = Field(default=None, pattern=r"^\d{4}-(0[1-9]|1[0-2])$")


class StatementsBatch(BaseModel):
    month: str


class StatementsResult(BaseModel):
    month: str
    statements: int
