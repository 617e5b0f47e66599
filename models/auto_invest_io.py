"""What the auto-invest workflow and its activities take and give (no ORM here)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel


class AutoInvestInput(BaseModel):
    # None: every loan open for funding (the Schedule's run); else just these.
    loan_ids: list[uuid.UUID] | None = None
    reason: str = "schedule"


class PlanAutoInvestInput(BaseModel):
    # The run, as its workflow names it: a retried plan finds the plan already made.
    run_key: str
    loan_ids: list[uuid.UUID] | None = None
    at: datetime


class AutoInvestPlan(BaseModel):
    run_no: int
    planned: int
    not_allocated: int = 0


class PlaceAutoInvestmentsInput(BaseModel):
    run_no: int


class PlacementCounts(BaseModel):
    placed: int = 0
    refused: int = 0


class AutoInvestResult(BaseModel):
    run_no: int
    placed: int
    refused: int
    not_allocated: int
