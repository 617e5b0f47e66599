"""Award credit (README "Financing modalities"): a loan for a named asset, paid to the asset's
seller. The borrower's down payment, with what the disbursement withholds (the platform fee
and the reserve contribution), waits in the loan's escrow account from the request to the
payout; then the seller gets the price exactly (the investors' money and the down payment),
the withholding goes where every loan's goes, and any kopek left over back to the borrower.
A loan that ends without a payout (rejected, its funding window closed) gives the escrow back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.orm import Session

from compliance.audit import append_audit
from core.errors import Conflict, InsufficientFunds, InvalidRequest, NotFound
from domain.money import ZERO
from domain.purchase_plan import withholding
from ledger.accounts import escrow_account, platform_account
from ledger.postings import Leg, post_transaction
from loans.common import available_account_of
from models.loans import LoanRequest
from models.plans import Seller
from models.products import LoanProduct
from models.users import User


@dataclass(frozen=True)
class Asset:
    kind: str
    description: str
    price: Decimal
    down_payment: Decimal
    seller_id: uuid.UUID


def asset_columns(asset: Asset) -> dict[str, object]:
    return {
        "seller_id": asset.seller_id,
        "asset_kind": asset.kind,
        "asset_description": asset.description,
        "asset_price": asset.price,
        "down_payment": asset.down_payment,
    }


def asset_facts(loan: LoanRequest) -> dict[str, str]:
    """An award credit's asset as the trail and the agreement record it (empty: a plain loan)."""
    if loan.seller_id is None:
        return {}
    facts = {
        "asset_kind": loan.asset_kind or "",
        "asset_description": loan.asset_description or "",
        "asset_price": f"{loan.asset_price:.2f}",
        "down_payment": f"{loan.down_payment:.2f}",
        "seller_id": str(loan.seller_id),
    }
    if loan.plan_id is not None:
        facts["plan_id"] = str(loan.plan_id)
    return facts


def check_seller(session: Session, seller_id: uuid.UUID) -> Seller:
    seller = session.get(Seller, seller_id)
    user = session.get(User, seller_id)
    if seller is None or user is None or not user.is_active:
        raise InvalidRequest(f"no registered seller {seller_id}", field="seller_id")
    return seller


def check_asset(product: LoanProduct, asset: Asset, loan_amount: Decimal) -> None:
    """The asset must be of a kind the product finances, and its price the loan plus the down
    payment, which must be at least the product's share of the price."""
    if asset.kind not in (product.asset_kinds or []):
        raise InvalidRequest(
            f"product {product.code!r} finances {', '.join(product.asset_kinds or [])}, not {asset.kind!r}",
            field="asset.kind",
        )
    if asset.price != loan_amount + asset.down_payment:
        raise InvalidRequest("the asset's price must be the loan amount plus the down payment", field="amount")
    least = (asset.price * product.min_down_payment_percent / 100).quantize(Decimal("0.01"))
    if asset.down_payment < least:
        raise InvalidRequest(
            f"the down payment must be at least {product.min_down_payment_percent.normalize():f}% of the price: "
            f"{least:.2f}",
            field="asset.down_payment",
        )


def held_for(product: LoanProduct, loan_amount: Decimal, down_payment: Decimal) -> Decimal:
    """What an award credit holds in escrow until the payout."""
    return down_payment + withholding(loan_amount, product.platform_fee_percent, product.reserve_fund_percent)


def hold_down_payment(session: Session, loan: LoanRequest, product: LoanProduct) -> Decimal:
    """The borrower's down payment and withholding, wallet -> the loan's escrow, in the
    request's own transaction: no money, no request (InsufficientFunds, nothing kept)."""
    assert loan.down_payment is not None
    held = held_for(product, loan.amount, loan.down_payment)
    if held == 0:
        return held
    escrow = escrow_account(session, "loan", loan.id, loan.currency)
    try:
        post_transaction(
            session,
            key=f"loan:{loan.id}:down-payment",
            kind="down_payment_held",
            loan_id=loan.id,
            legs=[Leg(available_account_of(session, loan.borrower_id).id, -held), Leg(escrow.id, held)],
            description="down payment and the disbursement's withholding held until the payout",
            details={"down_payment": f"{loan.down_payment:.2f}", "withholding": f"{held - loan.down_payment:.2f}"},
        )
    except InsufficientFunds:
        raise InsufficientFunds(
            f"the down payment and the disbursement's fee and reserve contribution, {held:.2f} {loan.currency}, "
            "must be in your wallet when you ask"
        ) from None
    return held


def payout_legs(
    session: Session, loan: LoanRequest, amount: Decimal, platform_fee: Decimal, reserve: Decimal
) -> tuple[list[Leg], Decimal, Decimal]:
    """The legs paying an award credit out besides the investors' (their reserved money):
    (legs, to the seller, change back to the borrower). The escrow must hold at least the
    down payment and the withholding (Conflict: refused for good)."""
    assert loan.seller_id is not None and loan.down_payment is not None
    escrow = escrow_account(session, "loan", loan.id, loan.currency)
    session.refresh(escrow)
    held = escrow.balance
    needed = loan.down_payment + platform_fee + reserve
    if held < needed:
        raise Conflict(f"the escrow holds {held:.2f}; the payout needs {needed:.2f} from it")
    to_seller = amount + loan.down_payment
    change = held - needed
    seller = session.get(User, loan.seller_id)
    if seller is None or not seller.is_active:
        raise Conflict("the seller is no longer an active registered seller")
    try:
        seller_account = available_account_of(session, loan.seller_id)
    except NotFound:
        raise Conflict("the seller has no wallet") from None
    legs = [Leg(escrow.id, -held), Leg(seller_account.id, to_seller)]
    if platform_fee:
        legs.append(Leg(platform_account(session, "platform_fees", loan.currency).id, platform_fee))
    if reserve:
        legs.append(Leg(platform_account(session, "reserve_fund", loan.currency).id, reserve))
    if change:
        legs.append(Leg(available_account_of(session, loan.borrower_id).id, change))
    return legs, to_seller, change


def return_escrow(session: Session, loan: LoanRequest, why: str) -> Decimal:
    """A loan that ends without a payout: its escrow back to the borrower's wallet, once."""
    if loan.seller_id is None:
        return ZERO
    escrow = escrow_account(session, "loan", loan.id, loan.currency)
    session.refresh(escrow)
    if escrow.balance <= 0:
        return ZERO
    held = escrow.balance
    if loan.plan_id is not None:  # (the plan's row before any ledger account: the lock order)
        from plans.trail import lock_plan

        lock_plan(session, loan.plan_id)
    posted = post_transaction(
        session,
        key=f"loan:{loan.id}:down-payment:return",
        kind="down_payment_returned",
        loan_id=loan.id,
        legs=[Leg(escrow.id, -held), Leg(available_account_of(session, loan.borrower_id).id, held)],
        description=f"the down payment back to the borrower: {why}",
    )
    if loan.plan_id is not None:
        _tell_the_plan(session, loan, held, why, posted.id)
    append_audit(
        session,
        loan.id,
        f"ledger:loan:{loan.id}:down-payment:return",
        "loan.down_payment_returned",
        note=f"{held:.2f} {loan.currency} held for the down payment went back to the borrower: {why}",
        details={"ledger_transaction_id": posted.id, "amount": f"{held:.2f}"},
    )
    return held


def _tell_the_plan(session: Session, loan: LoanRequest, returned: Decimal, why: str, transaction_id: uuid.UUID) -> None:
    """A plan's award credit that never paid out: the plan's trail says so, and what came back.
    (The plan stays awarded: its award could not be lent, and its contributions are returned
    in full, as when the award credit product can no longer lend it.)"""
    from plans.trail import append_plan_record, lock_plan

    assert loan.plan_id is not None
    plan = lock_plan(session, loan.plan_id)
    plan.status_reason = f"its award credit was not paid out ({why}): the contributions were returned"
    plan.refunded = returned
    append_plan_record(
        session,
        plan.id,
        f"award-credit:{loan.id}:failed",
        "plan.award_credit_failed",
        note=f"the award credit {loan.id} was not paid out ({why}): {returned:.2f} went back to the wallet",
        details={
            "loan_id": loan.id,
            "reason": why,
            "returned": f"{returned:.2f}",
            "ledger_transaction_id": transaction_id,
        },
    )
