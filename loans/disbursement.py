"""Paying a funded loan out: every investor's reserved money to the borrower, less the platform
fee and the reserve-fund contribution, and the fixed schedule stored, in one database
transaction keyed `loan:<id>:disburse`, run once per loan by loans/exactly_once.py (the
activity): a retry finds the first answer and moves nothing again.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from compliance.audit import append_audit
from core.errors import Conflict
from domain.money import ZERO
from ledger.accounts import platform_account, wallet_accounts, wallet_of_user
from ledger.postings import Leg, find_posted, merge_legs, post_transaction
from loans.award_credit import payout_legs
from loans.common import available_account_of, investments_of, loan_row, notify
from loans.investor_shares import store_agreed_shares
from models.loan_workflow import DisburseInput, DisburseResult
from models.loans import Investment, LoanRequest, RepaymentInstallment


def disburse_loan(session: Session, input: DisburseInput) -> DisburseResult:
    key = f"loan:{input.loan_id}:disburse"
    investments = investments_of(session, input.loan_id, status=("pending", "active"))
    done = find_posted(session, key)
    if done is None:
        transaction_id, to_borrower = _post_disbursement(session, input, key, investments)
    else:  # posted before outcomes were recorded (a loan disbursed by an earlier release)
        transaction_id, to_borrower = done.id, Decimal(done.details["to_borrower"])
    _store_schedule(session, input)
    for investment in investments:
        investment.status = "active"
    # Each investment's part of each installment: its agreement's figures, paid by collections.
    store_agreed_shares(session, input.loan_id)
    loan = loan_row(session, input.loan_id, lock=True)
    loan.rate_annual = input.rate_annual
    loan.disbursed_at = loan.disbursed_at or input.at
    loan.updated_at = input.at
    _record(session, input, transaction_id, to_borrower, len(investments), loan)
    return DisburseResult(
        ledger_transaction_id=transaction_id,
        to_borrower=to_borrower,
        investors=len({i.investor_id for i in investments}),
    )


def _post_disbursement(
    session: Session, input: DisburseInput, key: str, investments: list[Investment]
) -> tuple[uuid.UUID, Decimal]:
    invested = sum((i.amount for i in investments), ZERO)
    if invested != input.amount:
        raise Conflict(f"reservations total {invested:.2f}, the loan is {input.amount:.2f}")
    legs: list[Leg] = []
    for investment in investments:
        _, reserved = wallet_accounts(session, wallet_of_user(session, investment.investor_id).id)
        legs.append(Leg(reserved.id, -investment.amount))
    loan = loan_row(session, input.loan_id)
    details: dict[str, str] = {}
    if loan.seller_id is not None:
        # An award credit: the asset's seller is paid the price (README "Financing modalities").
        award_legs, to_seller, change = payout_legs(
            session, loan, input.amount, input.platform_fee, input.reserve_contribution
        )
        legs.extend(award_legs)
        to_borrower = change
        details = {"seller_id": str(loan.seller_id), "to_seller": f"{to_seller:.2f}"}
    else:
        to_borrower = input.amount - input.platform_fee - input.reserve_contribution
        legs.append(Leg(available_account_of(session, input.borrower_id).id, to_borrower))
        if input.platform_fee:
            legs.append(Leg(platform_account(session, "platform_fees", input.currency).id, input.platform_fee))
        if input.reserve_contribution:
            legs.append(Leg(platform_account(session, "reserve_fund", input.currency).id, input.reserve_contribution))
    posted = post_transaction(
        session,
        key=key,
        kind="disbursement",
        loan_id=input.loan_id,
        legs=merge_legs([leg for leg in legs if leg.amount]),
        description="loan disbursed" if loan.seller_id is None else "award credit paid to the seller",
        details={
            "to_borrower": f"{to_borrower:.2f}",
            "platform_fee": f"{input.platform_fee:.2f}",
            "reserve_contribution": f"{input.reserve_contribution:.2f}",
            **details,
        },
    )
    return posted.id, to_borrower


def _store_schedule(session: Session, input: DisburseInput) -> None:
    for item in input.installments:
        session.execute(
            pg_insert(RepaymentInstallment)
            .values(
                loan_id=input.loan_id,
                payment_num=item.payment_num,
                due_date=item.due_date,
                principal=item.principal,
                interest=item.interest,
                status="pending",
            )
            .on_conflict_do_nothing(index_elements=["loan_id", "payment_num"])
        )


def _record(
    session: Session,
    input: DisburseInput,
    transaction_id: uuid.UUID,
    to_borrower: Decimal,
    investments: int,
    loan: LoanRequest,
) -> None:
    if loan.seller_id is not None:
        assert loan.asset_price is not None
        paid = f"{loan.asset_price:.2f} {input.currency} paid to the seller for the {loan.asset_kind}"
        asset: dict[str, str] = {
            "seller_id": str(loan.seller_id),
            "to_seller": f"{loan.asset_price:.2f}",
            "down_payment": f"{loan.down_payment:.2f}",
        }
    else:
        paid, asset = f"{to_borrower:.2f} {input.currency} paid to the borrower", {}
    append_audit(
        session,
        input.loan_id,
        "disbursed",
        "loan.disbursed",
        note=f"{paid}; the schedule is fixed",
        details={
            **asset,
            "ledger_transaction_id": transaction_id,
            "amount": f"{input.amount:.2f}",
            "to_borrower": f"{to_borrower:.2f}",
            "platform_fee": f"{input.platform_fee:.2f}",
            "reserve_contribution": f"{input.reserve_contribution:.2f}",
            "rate_annual": input.rate_annual,
            "investments": investments,
            "schedule": [
                {
                    "payment_num": i.payment_num,
                    "due_date": i.due_date,
                    "principal": f"{i.principal:.2f}",
                    "interest": f"{i.interest:.2f}",
                }
                for i in input.installments
            ],
        },
    )
    notify(
        session,
        input.borrower_id,
        input.loan_id,
        "loan_disbursed",
        (f"{paid}" if loan.seller_id is not None else f"{to_borrower:.2f} {input.currency} is in your wallet")
        + "; the first installment is due "
        f"{input.installments[0].due_date.isoformat()}",
        f"loan:{input.loan_id}:disbursed",
    )
