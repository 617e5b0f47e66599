"""Collecting installments: from the borrower's wallet to the investors, and onto the schedule.

One database transaction per collection, run once per key by loans/exactly_once.py (the
activity): a retry or a stalled attempt gets the first answer and moves nothing again.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from compliance.audit import append_audit
from core.errors import InsufficientFunds
from domain.collection import collection_waterfall, total_of
from domain.money import ZERO
from investing.market import close_listings_if_untradeable
from ledger.accounts import available_account_ids
from ledger.postings import Leg, find_posted, lock_accounts, merge_legs, post_transaction
from loans.common import investments_of
from loans.investor_shares import pay_investments
from models.loan_workflow import CollectInput, CollectResult, InstallmentAmounts
from models.loans import RepaymentInstallment
from scoring.points import award_points


def collect_installments(session: Session, input: CollectInput) -> CollectResult:
    """Takes what the borrower's wallet holds, up to what is due (the waterfall in
    domain/collection.py), and pays each investment its part of each installment paid, by
    what it is still owed under its agreement (loans/investor_shares.py)."""
    done = find_posted(session, input.key)
    if done is not None:  # committed before outcomes were recorded (loans/exactly_once.py)
        return CollectResult.model_validate(done.details["result"])
    investments = investments_of(session, input.loan_id)
    investor_of = {i.id: i.investor_id for i in investments}
    accounts = available_account_ids(session, {input.borrower_id, *investor_of.values()})  # (one query)
    borrower_account = accounts[input.borrower_id]
    payees = {investor_id: accounts[investor_id] for investor_id in set(investor_of.values())}
    # The lock order (ledger/postings.py): every account this collection may touch, in
    # ascending id order, before reading what the borrower's wallet holds.
    available = lock_accounts(session, {borrower_account, *payees.values()})[borrower_account].balance
    owed = total_of(input.items)
    if input.require_full and available < owed:
        raise InsufficientFunds(
            f"{owed:.2f} is needed, the wallet holds {available:.2f}",
            needed=f"{owed:.2f}",
            available=f"{available:.2f}",
        )
    paid = collection_waterfall(available, input.items)
    result = CollectResult(total=total_of(paid), items=paid)
    if result.total > 0:
        receipts = pay_investments(session, input.loan_id, paid)
        shares: dict[uuid.UUID, Decimal] = {}
        for investment_id, receipt in receipts.items():
            investor_id = investor_of[investment_id]
            shares[investor_id] = shares.get(investor_id, ZERO) + receipt.total
        legs = [Leg(borrower_account, -result.total)]
        legs += [Leg(payees[investor_id], share) for investor_id, share in shares.items() if share]
        post_transaction(
            session,
            key=input.key,
            kind=f"{input.purpose}_collection",
            loan_id=input.loan_id,
            legs=merge_legs(legs),
            description=f"{input.purpose.replace('_', ' ')} collected and distributed",
            details={
                "result": result.model_dump(mode="json"),
                "shares": {str(k): f"{v:.2f}" for k, v in shares.items()},
                "by_investment": {
                    str(k): {"principal": f"{r.principal:.2f}", "interest": f"{r.interest:.2f}", "fee": f"{r.fee:.2f}"}
                    for k, r in receipts.items()
                },
            },
        )
    _apply_to_schedule(session, input, paid)
    # (a collection that leaves the loan on its last installment, or repaid, ends its listings)
    close_listings_if_untradeable(session, input.loan_id)
    append_audit(
        session,
        input.loan_id,
        f"collection:{input.key}",
        f"{input.purpose}.collected",
        note=(
            f"{result.total:.2f} of {owed:.2f} collected from the borrower and distributed"
            if result.total
            else f"nothing collected: {owed:.2f} was due and the wallet was empty"
        ),
        details={
            "owed": f"{owed:.2f}",
            "collected": f"{result.total:.2f}",
            "items": [p.model_dump(mode="json") for p in paid],
        },
    )
    return result


def _apply_to_schedule(session: Session, input: CollectInput, paid: list[InstallmentAmounts]) -> None:
    due = {item.payment_num: item for item in input.items}
    for item in paid:
        row = session.scalars(
            select(RepaymentInstallment)
            .where(RepaymentInstallment.loan_id == input.loan_id, RepaymentInstallment.payment_num == item.payment_num)
            .with_for_update()
        ).one()
        row.paid_principal += item.principal
        row.paid_interest += item.interest
        row.late_fee_paid += item.fee
        row.late_fee_accrued = max(row.late_fee_accrued, due[item.payment_num].fee_accrued)
        if item.settles(due[item.payment_num]):
            if row.status == "pending" and input.purpose == "installment":
                # Paid in full on its due date, never overdue. (Installments settled by an
                # early repayment earn the loan's repaid bonus instead.) award_points reads only
                # the rules and writes only borrower_points, so the row's changes can wait for
                # the next query's flush and go out as one UPDATE (its rules SELECT flushed half).
                with session.no_autoflush:
                    award_points(
                        session,
                        input.borrower_id,
                        input.loan_id,
                        "on_time_installment",
                        f"loan:{input.loan_id}:installment:{item.payment_num}:on-time",
                        f"installment {item.payment_num} paid on time",
                    )
            row.status = "paid"
            row.paid_at = input.at
