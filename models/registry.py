"""Imports every table module so Base.metadata knows them all (Alembic, tests).
Kept out of models/__init__.py, which stays free of imports for the workflow sandbox."""

from models import (  # noqa: F401
    access,
    auto_invest,
    ledger,
    loans,
    market,
    outbox,
    outcomes,
    plans,
    products,
    records,
    request_limits,
    scoring,
    simulations,
    users,
)
from models.base import Base

metadata = Base.metadata
