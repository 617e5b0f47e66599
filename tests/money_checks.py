"""After a fault: the ledger, the read side and each loan workflow's own state agree,
installment by installment; nothing was collected twice; the books balance.

Used by the fault tests (tests/test_faults.py, tests/test_make_run_supervision.py) on the
real servers, after the platform recovered and the loans reached their end."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from ledger.accounts import wallet_accounts, wallet_of_user
from models.ledger import LedgerPosting, LedgerTransaction
from models.loan_workflow import LoanSnapshot
from models.loans import LoanRequest, RepaymentInstallment
from models.outcomes import OperationOutcome
from tests.ledger_helpers import assert_books_balance

D = Decimal


async def final_snapshot(client: Client, workflow_id: str) -> LoanSnapshot:
    """The loan's own final state: the result of its last run."""
    return await client.get_workflow_handle(workflow_id, result_type=LoanSnapshot).result()


def assert_loan_agrees(session: Session, loan_id: uuid.UUID, snapshot: LoanSnapshot) -> None:
    loan = session.get_one(LoanRequest, loan_id)
    where = f"loan {loan_id}"
    assert loan.status == snapshot.status, f"{where}: read side {loan.status}, workflow {snapshot.status}"
    rows = session.scalars(
        select(RepaymentInstallment)
        .where(RepaymentInstallment.loan_id == loan_id)
        .order_by(RepaymentInstallment.payment_num)
    ).all()
    assert len(rows) == len(snapshot.installments), where
    for row, item in zip(rows, snapshot.installments, strict=True):
        read_side = (row.payment_num, row.status, row.paid_principal, row.paid_interest, row.late_fee_paid)
        workflow = (item.payment_num, item.status, item.paid_principal, item.paid_interest, item.paid_fee)
        assert read_side == workflow, f"{where}: read side {read_side}, workflow {workflow}"
        # never more than was owed: an installment collected twice would show here
        assert item.paid_principal <= item.principal and item.paid_interest <= item.interest, f"{where}: {item}"
        assert item.paid_fee <= item.fee_accrued, f"{where}: {item}"

    # the ledger: what left the borrower's wallet for this loan is what the installments show
    borrower_account = wallet_accounts(session, wallet_of_user(session, loan.borrower_id).id)[0].id
    collections = session.execute(
        select(LedgerTransaction.id, LedgerTransaction.idempotency_key).where(
            LedgerTransaction.loan_id == loan_id, LedgerTransaction.kind.like("%_collection")
        )
    ).all()
    legs = session.execute(
        select(LedgerPosting.account_id, LedgerPosting.amount).where(
            LedgerPosting.transaction_id.in_([c.id for c in collections])
        )
    ).all()
    taken = -sum((leg.amount for leg in legs if leg.account_id == borrower_account), D(0))
    paid_out = sum((leg.amount for leg in legs if leg.account_id != borrower_account), D(0))
    on_schedule = sum((i.paid_principal + i.paid_interest + i.paid_fee for i in snapshot.installments), D(0))
    assert taken == paid_out == on_schedule, f"{where}: ledger took {taken}, paid {paid_out}; schedule {on_schedule}"
    # every collection posted is one the workflow decided (recorded outcome, same total)
    outcomes = {
        o.key: o.result
        for o in session.scalars(
            select(OperationOutcome).where(
                OperationOutcome.loan_id == loan_id, OperationOutcome.operation == "collect_installments"
            )
        )
    }
    for collection in collections:
        recorded = outcomes.get(collection.idempotency_key)
        assert recorded is not None, f"{where}: {collection.idempotency_key} posted without a recorded outcome"
    recorded_total = sum((D(r["total"]) for r in outcomes.values() if r is not None), D(0))
    assert recorded_total == taken, f"{where}: outcomes say {recorded_total}, the ledger {taken}"
    disbursements = session.scalars(
        select(LedgerTransaction.id).where(
            LedgerTransaction.loan_id == loan_id, LedgerTransaction.kind == "disbursement"
        )
    ).all()
    assert len(disbursements) == (1 if snapshot.installments else 0), where


async def assert_everything_agrees(
    session_factory: sessionmaker[Session], client: Client, loans: dict[uuid.UUID, str], ends: set[str]
) -> dict[uuid.UUID, LoanSnapshot]:
    """Every loan (id -> workflow id) ended in one of `ends`, and agrees with the ledger and
    the read side; the trial balance is zero."""
    snapshots = {loan_id: await final_snapshot(client, workflow_id) for loan_id, workflow_id in loans.items()}
    with session_factory() as session:
        for loan_id, snapshot in snapshots.items():
            assert snapshot.status in ends, f"loan {loan_id} ended {snapshot.status}: {snapshot.installments}"
            assert_loan_agrees(session, loan_id, snapshot)
        assert_books_balance(session)
    return snapshots
