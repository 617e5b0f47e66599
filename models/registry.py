"""Imports every table module so Base.metadata knows them all (Alembic, tests).
Kept out of models/__init__.py, which stays free of imports for the workflow sandbox."""

from models import access, auto_invest, ledger, loans, products, records, scoring, simulations, users  # noqa: F401
from models.base import Base

metadata = Base.metadata
