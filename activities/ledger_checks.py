"""Activities that check the ledger as a whole."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from ledger.reports import reconciliation
from models.ledger_reports import ReconciliationInput, ReconciliationResult

log = logging.getLogger(__name__)


class LedgerCheckActivities:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    @activity.defn(name="check_trial_balance")
    def check_trial_balance(self, input: ReconciliationInput) -> ReconciliationResult:
        """Every account against the sum of its postings: the database's verdict, one row
        (ledger/reports.py, reconciliation)."""
        with self._session_factory() as session:
            result = reconciliation(session)
        if not result.balanced:
            # Loud on purpose: an unbalanced ledger is a defect an operator must see.
            log.error("LEDGER OUT OF BALANCE: total=%s mismatched=%s", result.total, result.mismatched_accounts)
        return result
