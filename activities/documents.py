"""Document activities: render PDFs (WeasyPrint, CPU-bound, on the activity thread pool),
store them content-addressed and register them.

Each document is registered in its own database transaction, so a retried activity skips
what an earlier attempt finished; progress is heartbeated for the operator in the UI.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.errors import business_errors_are_final
from core.db import unit_of_work
from core.pseudonyms import pseudonym
from core.settings import Settings
from documents.agreements import plan_agreements, register_agreement
from documents.assignments import register_assignment_agreements
from documents.statements import generate_investor_statement, investors_to_statement
from documents.store import DocumentStore
from investing.market import trade_facts
from models.documents_io import LoanAgreementsInput, LoanAgreementsResult, StatementsBatch, StatementsResult
from models.loan_workflow import TradeDocumentsInput


def _heartbeat(*details) -> None:
    if activity.in_activity():
        activity.heartbeat(*details)


class DocumentActivities:
    def __init__(self, session_factory: sessionmaker[Session], store: DocumentStore, settings: Settings) -> None:
        self._session_factory = session_factory
        self._store = store
        self._settings = settings

    @activity.defn(name="generate_loan_agreements")
    @business_errors_are_final
    def generate_loan_agreements(self, input: LoanAgreementsInput) -> LoanAgreementsResult:
        """The borrower's agreement and one per investment, for a disbursed loan."""
        with self._session_factory() as session:
            plan = plan_agreements(session, input.loan_id)
        for done, subject in enumerate(plan.subjects, start=1):
            with unit_of_work(self._session_factory) as session:
                register_agreement(session, self._store, self._settings, input.loan_id, subject, plan.shares)
            _heartbeat(done)
        return LoanAgreementsResult(documents=len(plan.subjects))

    @activity.defn(name="register_trade_documents")
    @business_errors_are_final
    def register_trade_documents(self, input: TradeDocumentsInput) -> int:
        """The assignment agreement of a settled trade, one copy for the seller and one for the
        buyer, in the register; a retry registers nothing twice."""
        with unit_of_work(self._session_factory) as session:
            facts = trade_facts(session, input.trade_id)
            documents = register_assignment_agreements(
                session,
                self._store,
                facts,
                self._settings,
                pseudonym("investor", facts.seller_id, self._settings),
                pseudonym("investor", facts.buyer_id, self._settings),
            )
        return len(documents)

    @activity.defn(name="generate_investor_statements")
    @business_errors_are_final
    def generate_investor_statements(self, input: StatementsBatch) -> StatementsResult:
        """Every investor's statement for a month that has ended, in batches by investor id;
        a retry starts after the last investor an earlier attempt heartbeated."""
        details = activity.info().heartbeat_details if activity.in_activity() else ()
        after = uuid.UUID(details[0]) if details else None
        done = int(details[1]) if len(details) > 1 else 0
        now = datetime.now(UTC)
        while True:
            with self._session_factory() as session:
                batch = investors_to_statement(session, input.month, after=after)
            if not batch:
                return StatementsResult(month=input.month, statements=done)
            for investor_id in batch:
                with unit_of_work(self._session_factory) as session:
                    generate_investor_statement(session, self._store, self._settings, investor_id, input.month, now=now)
                done += 1
                after = investor_id
                _heartbeat(str(after), done)
