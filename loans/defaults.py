"""A loan's default: the reserve fund's cover, each investment's cover and loss, the written-off
installments, and what the borrower, the investors and the trail are told.

One database transaction, run once per loan by loans/exactly_once.py (the activity): a retry
of a committed default returns its first answer (the investments it reads are "defaulted"
by then; it never reads them again). The arithmetic is domain/default_cover.py.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from compliance.audit import append_audit
from core.errors import Conflict
from domain.default_cover import DefaultSplit, reserve_cover, split_default
from investing.market import close_listings
from ledger.accounts import platform_account
from ledger.postings import Leg, lock_accounts, merge_legs, post_transaction
from loans.common import available_account_of, investments_of, loan_row, notify
from loans.investor_shares import outstanding_principal_by_investment
from models.ledger import LedgerAccount
from models.loan_workflow import DefaultInput, DefaultResult
from models.loans import Investment, RepaymentInstallment
from scoring.points import award_points


def default_loan(session: Session, input: DefaultInput) -> DefaultResult:
    investments = investments_of(session, input.loan_id)
    if not investments:
        # Defaulted by an attempt that committed before outcomes were recorded
        # (loans/exactly_once.py): its answer is what it wrote on each investment.
        done = investments_of(session, input.loan_id, status="defaulted")
        if done:
            covered = sum((i.reserve_cover_amount for i in done), Decimal(0))
            return DefaultResult(covered=covered, loss=sum((i.loss_amount for i in done), Decimal(0)))
    split = _cover_from_the_reserve_fund(session, input, investments)
    covered = split.covered
    _record_losses(session, input, investments, split)
    _write_off(session, input)
    close_listings(session, input.loan_id, "the loan defaulted")
    loan = loan_row(session, input.loan_id, lock=True)
    loan.closed_at = input.at
    loan.updated_at = input.at
    award_points(
        session, loan.borrower_id, loan.id, "loan_defaulted", f"loan:{loan.id}:defaulted", "the loan defaulted"
    )
    figures = {
        "outstanding_principal": f"{input.outstanding_principal:.2f}",
        "covered_by_reserve_fund": f"{covered:.2f}",
        "investors_loss": f"{input.outstanding_principal - covered:.2f}",
    }
    append_audit(
        session,
        loan.id,
        "defaulted",
        "loan.defaulted",
        note="the loan defaulted; the reserve fund covered what it could",
        details=figures | {"written_off": [i.model_dump(mode="json") for i in input.written_off]},
    )
    notify(
        session,
        loan.borrower_id,
        loan.id,
        "loan_defaulted",
        "your loan was declared in default",
        f"loan:{loan.id}:defaulted",
    )
    return DefaultResult(covered=covered, loss=input.outstanding_principal - covered)


def _cover_from_the_reserve_fund(session: Session, input: DefaultInput, investments: list[Investment]) -> DefaultSplit:
    """What the fund pays the investors, and the split of the default it makes (the cover is
    posted once; a retry reads what was posted)."""
    key = f"loan:{input.loan_id}:default:reserve-cover"
    fund_account = platform_account(session, "reserve_fund", input.currency)
    payees = {i.investor_id: available_account_of(session, i.investor_id).id for i in investments}
    # The lock order (ledger/postings.py): every account the cover may touch, ascending,
    # before reading what the fund holds.
    lock_accounts(session, {fund_account.id, *payees.values()})
    fund = session.execute(select(LedgerAccount.balance).where(LedgerAccount.id == fund_account.id)).scalar_one()
    owed = outstanding_principal_by_investment(session, input.loan_id)
    if sum(owed.values(), Decimal(0)) != input.outstanding_principal:
        raise Conflict(
            f"the investments are owed {sum(owed.values(), Decimal(0)):.2f} of principal, "
            f"the loan says {input.outstanding_principal:.2f}"
        )
    covered = reserve_cover(fund, input.outstanding_principal)
    split = split_default(covered, owed, {i.id: i.investor_id for i in investments})
    if covered > 0:
        shares = split.cover_by_investor
        legs = [Leg(fund_account.id, -covered)]
        legs += [Leg(payees[investor_id], share) for investor_id, share in shares.items()]
        post_transaction(
            session,
            key=key,
            kind="reserve_cover",
            loan_id=input.loan_id,
            legs=merge_legs(legs),
            description="default: outstanding principal covered by the reserve fund",
            details={"covered": f"{covered:.2f}", "shares": {str(k): f"{v:.2f}" for k, v in shares.items()}},
        )
    return split


def _record_losses(session: Session, input: DefaultInput, investments: list[Investment], split: DefaultSplit) -> None:
    for investment in investments:
        investment.reserve_cover_amount, investment.loss_amount = split.by_investment[investment.id]
        investment.status = "defaulted"
        notify(
            session,
            investment.investor_id,
            input.loan_id,
            "loan_defaulted",
            f"the loan defaulted; the reserve fund covered {investment.reserve_cover_amount:.2f} "
            f"of your outstanding principal",
            f"loan:{input.loan_id}:investment:{investment.id}:defaulted",
        )


def _write_off(session: Session, input: DefaultInput) -> None:
    for item in input.written_off:
        row = session.scalars(
            select(RepaymentInstallment)
            .where(RepaymentInstallment.loan_id == input.loan_id, RepaymentInstallment.payment_num == item.payment_num)
            .with_for_update()
        ).one()
        row.late_fee_accrued = max(row.late_fee_accrued, item.fee_accrued)
        if row.status != "paid":
            row.status = "written_off"
