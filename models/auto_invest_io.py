"""What the auto-invest workflow and its activities take and give (no ORM here)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class AutoInvestInput(BaseModel):
    # None: every loan open for funding (the Schedule's run); else just these.
    loan_ids: list[uuid.UUID] | None = None
    reason: str = "schedule"
    # The market's open listings: None, every one on a run over every funding loan (the
    # Schedule's) and none on a run for given loans; else just these.
    listing_ids: list[uuid.UUID] | None = None

    def listings_planned(self) -> list[uuid.UUID] | None:
        """What the plan takes: None, every open listing; [], none; else these."""
        if self.listing_ids is not None:
            return self.listing_ids
        return None if self.loan_ids is None else []


class PlanAutoInvestInput(BaseModel):
    # The run, as its workflow names it: a retried plan finds the plan already made.
    run_key: str
    loan_ids: list[uuid.UUID] | None = None
    at: datetime
    # None: every open listing; [] (a run planned before the market existed): none.
    listing_ids: list[uuid.UUID] | None = Field(default_factory=list)


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
