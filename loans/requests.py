"""Making a loan request: checks against the product, the read-side row, and the input of
the loan's workflow (a snapshot of the product version it is made under)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import Conflict, IdempotencyConflict, InvalidRequest
from core.settings import PLATFORM_TIME_ZONE
from loans.award_credit import Asset, asset_columns, check_asset, check_seller, hold_down_payment
from models.loan_workflow import LoanTerms, LoanWorkflowInput
from models.loans import LoanRequest
from models.products import LoanProduct
from models.simulations import Simulation
from models.users import BorrowerProfile
from products.service import check_request_fits, current_product, terms_of


def workflow_id_for(loan_id: uuid.UUID) -> str:
    """Deterministic and free of personal data."""
    return f"loan-{loan_id}"


def terms_snapshot(product: LoanProduct) -> LoanTerms:
    terms = terms_of(product).model_dump(
        exclude={"code", "name", "min_amount", "max_amount", "min_term_months", "max_term_months"}
    )
    return LoanTerms(**terms, product_id=product.id, product_code=product.code, product_version=product.version)


def workflow_input(
    session: Session, loan: LoanRequest, time_scale: int, time_zone: str = PLATFORM_TIME_ZONE
) -> LoanWorkflowInput:
    product = session.get_one(LoanProduct, loan.product_id)
    return LoanWorkflowInput(
        loan_id=loan.id,
        borrower_id=loan.borrower_id,
        amount=loan.amount,
        term_months=loan.term_months,
        terms=terms_snapshot(product),
        time_scale=time_scale,
        time_zone=time_zone,
    )


def create_loan_request(
    session: Session,
    borrower_id: uuid.UUID,
    *,
    product_code: str | None,
    amount: Decimal | None,
    term_months: int | None,
    purpose: str,
    simulation_id: uuid.UUID | None,
    client_key: str | None,
    asset: Asset | None = None,
) -> tuple[LoanRequest, bool]:
    """Returns (loan, created). With a client key, a repeat of the same request returns the
    first loan; the same key for another request is an error. An award credit product's
    request names its asset and seller (the amount is then the price less the down payment)
    and holds the down payment from the wallet (loans/award_credit.py)."""
    if simulation_id is not None:
        simulation = session.get(Simulation, simulation_id)
        if simulation is None or simulation.owner_id != borrower_id:
            raise InvalidRequest(f"no simulation {simulation_id} of yours", field="simulation_id")
        product = session.get_one(LoanProduct, simulation.product_id)
        if not product.is_current:
            raise Conflict(
                f"product {product.code!r} changed since this simulation (version {product.version}); "
                "simulate again to see the current terms"
            )
        if amount is not None and amount != simulation.amount or term_months not in (None, simulation.term_months):
            raise InvalidRequest("amount and term come from the simulation; leave them out or make them match")
        amount, term_months = simulation.amount, simulation.term_months
    else:
        if term_months is None:
            raise InvalidRequest("give amount and term_months, or a simulation_id")
        product = current_product(session, product_code or "standard")
    if product.modality == "programmed_purchase":
        raise InvalidRequest(
            f"product {product.code!r} is a programmed purchase: ask for a plan (POST /v1/plans)", field="product"
        )
    if product.modality == "award_credit":
        if asset is None:
            raise InvalidRequest(
                f"product {product.code!r} is an award credit: name the asset and its seller", field="asset"
            )
        if amount is not None and amount != asset.price - asset.down_payment:
            raise InvalidRequest("the amount must be the asset's price less the down payment", field="amount")
        amount = asset.price - asset.down_payment
        if amount <= 0:
            raise InvalidRequest("the down payment must leave something to lend", field="asset.down_payment")
    elif asset is not None:
        raise InvalidRequest(
            f"product {product.code!r} lends to the borrower's wallet: it names no asset", field="asset"
        )
    if client_key:
        existing = session.scalars(
            select(LoanRequest).where(LoanRequest.borrower_id == borrower_id, LoanRequest.client_key == client_key)
        ).first()
        if existing is not None:
            asked = (asset.seller_id, asset.kind, asset.price, asset.down_payment) if asset else (None,) * 4
            stored = (existing.seller_id, existing.asset_kind, existing.asset_price, existing.down_payment)
            if (existing.amount, existing.term_months, existing.product_id, stored) != (
                amount,
                term_months,
                product.id,
                asked,
            ):
                raise IdempotencyConflict(f"Idempotency-Key {client_key!r} was used for another loan request")
            return existing, False
    if amount is None or term_months is None:
        raise InvalidRequest("give amount and term_months, or a simulation_id")
    check_request_fits(product, amount, term_months)
    if session.get(BorrowerProfile, borrower_id) is None:
        raise InvalidRequest("complete your profile first (PUT /v1/users/me/profile): scoring needs it")
    if asset is not None:
        assert amount is not None
        check_asset(product, asset, amount)
        check_seller(session, asset.seller_id)
    loan_id = uuid.uuid4()
    loan = LoanRequest(
        id=loan_id,
        borrower_id=borrower_id,
        product_id=product.id,
        amount=amount,
        currency=product.currency,
        term_months=term_months,
        purpose=purpose,
        status="pending",
        workflow_id=workflow_id_for(loan_id),
        client_key=client_key,
        simulation_id=simulation_id,
        **(asset_columns(asset) if asset is not None else {}),
    )
    session.add(loan)
    session.flush()
    if asset is not None:
        hold_down_payment(session, loan, product)
    return loan, True
