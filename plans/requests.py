"""Asking for a programmed purchase: the checks against its product and its award credit
product, the read-side row, and the input of the plan's workflow."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import Conflict, IdempotencyConflict, InvalidRequest
from core.settings import PLATFORM_TIME_ZONE
from domain.purchase_plan import PlanRuleError, award_credit_for, contributions_to_share
from loans.award_credit import check_seller
from models.plan_workflow import PlanTerms, PlanWorkflowInput
from models.plans import PurchasePlan
from models.products import LoanProduct
from models.simulations import Simulation
from models.users import BorrowerProfile
from products.service import check_request_fits, current_product


@dataclass(frozen=True)
class PlanAsk:
    product_code: str
    asset_kind: str
    asset_description: str
    asset_price: Decimal | None
    seller_id: uuid.UUID
    monthly_contribution: Decimal | None
    contribution_months: int | None
    loan_term_months: int


def plan_workflow_id(plan_id: uuid.UUID) -> str:
    return f"plan-{plan_id}"


def plan_terms(product: LoanProduct) -> PlanTerms:
    assert product.award_rule is not None and product.award_credit_product is not None
    assert product.cancellation_refund_percent is not None
    return PlanTerms(
        product_id=product.id,
        product_code=product.code,
        product_version=product.version,
        currency=product.currency,
        award_rule=product.award_rule,  # type: ignore[arg-type]
        award_share_percent=product.award_share_percent,
        cancellation_refund_percent=product.cancellation_refund_percent,
        award_credit_product=product.award_credit_product,
        late_fee_grace_days=product.late_fee_grace_days,
        late_fee_percent_per_day=product.late_fee_percent_per_day,
        default_after_days_overdue=product.default_after_days_overdue,
    )


def plan_workflow_input(
    session: Session, plan: PurchasePlan, time_scale: int, time_zone: str = PLATFORM_TIME_ZONE
) -> PlanWorkflowInput:
    return PlanWorkflowInput(
        plan_id=plan.id,
        borrower_id=plan.borrower_id,
        asset_price=plan.asset_price,
        monthly_contribution=plan.monthly_contribution,
        contribution_months=plan.contribution_months,
        loan_term_months=plan.loan_term_months,
        terms=plan_terms(session.get_one(LoanProduct, plan.product_id)),
        time_scale=time_scale,
        time_zone=time_zone,
    )


def award_credit_product(session: Session, product: LoanProduct) -> LoanProduct:
    assert product.award_credit_product is not None
    credit = current_product(session, product.award_credit_product)
    if credit.modality != "award_credit":
        raise Conflict(f"product {credit.code!r} is no longer an award credit product")
    return credit


def least_down_payment(credit: LoanProduct, price: Decimal) -> Decimal:
    return (price * credit.min_down_payment_percent / 100).quantize(Decimal("0.01"))


def award_credit_lendable(credit: LoanProduct, price: Decimal, contributed: Decimal) -> bool:
    """Whether a plan with these contributions can be awarded now: they pay the award credit's
    withholding and at least its product's down payment, and the credit is within its
    product's amounts."""
    try:
        loan = award_credit_for(price, contributed, credit.platform_fee_percent, credit.reserve_fund_percent)
    except PlanRuleError:
        return False
    return credit.min_amount <= loan.loan_amount <= credit.max_amount and loan.down_payment >= least_down_payment(
        credit, price
    )


def earliest_award(credit: LoanProduct, price: Decimal, monthly: Decimal, months: int) -> int | None:
    """The first contribution after which an award event may award the plan."""
    return next((n for n in range(1, months + 1) if award_credit_lendable(credit, price, monthly * n)), None)


def check_plan_fits(
    session: Session,
    product: LoanProduct,
    price: Decimal,
    monthly: Decimal,
    months: int,
    loan_term_months: int,
) -> None:
    """A plan must be able to end in an award credit its credit product gives, whenever it is
    awarded: after the first contribution (a draw or a bid may award it then) or at the
    share (share_reached), and at the last contribution."""
    if not product.min_amount <= price <= product.max_amount:
        raise InvalidRequest(
            f"the price {price:.2f} is outside product {product.code!r}: "
            f"{product.min_amount:.2f} to {product.max_amount:.2f} {product.currency}",
            field="asset.price",
        )
    if not product.min_term_months <= months <= product.max_term_months:
        raise InvalidRequest(
            f"{months} contributions is outside product {product.code!r}: "
            f"{product.min_term_months} to {product.max_term_months}",
            field="contribution_months",
        )
    credit = award_credit_product(session, product)
    if product.award_rule == "share_reached":
        assert product.award_share_percent is not None
        at_share = contributions_to_share(price, monthly, product.award_share_percent)
        if at_share > months:
            raise InvalidRequest(
                f"{months} contributions of {monthly:.2f} never reach the {product.award_share_percent.normalize():f}% "
                f"of the price that awards the plan ({at_share} would)",
                field="monthly_contribution",
            )
        award_points = [at_share]
    else:
        # an event may award the plan once its contributions can pay its award credit's
        # withholding and leave a credit its product lends: the plan must get there
        first = earliest_award(credit, price, monthly, months)
        if first is None:
            raise InvalidRequest(
                f"{months} contributions of {monthly:.2f} never leave an award credit product {credit.code!r} lends",
                field="monthly_contribution",
            )
        award_points = [first, months]
    for paid in award_points:
        contributed = monthly * paid
        if not award_credit_lendable(credit, price, contributed) and product.award_rule == "share_reached":
            raise InvalidRequest(
                f"at the award share the contributions would not pay product {credit.code!r}'s least down "
                f"payment ({credit.min_down_payment_percent.normalize():f}% of the price) and withholding, "
                "or leave a credit it lends",
                field="monthly_contribution",
            )
        try:
            loan = award_credit_for(price, contributed, credit.platform_fee_percent, credit.reserve_fund_percent)
        except PlanRuleError as error:
            raise InvalidRequest(f"after {paid} contribution(s): {error}", field="monthly_contribution") from None
        try:
            check_request_fits(credit, loan.loan_amount, loan_term_months)
        except InvalidRequest as error:
            raise InvalidRequest(
                f"awarded after {paid} contribution(s), the award credit of {loan.loan_amount:.2f} would not fit "
                f"product {credit.code!r}: {error.detail}",
                field="monthly_contribution" if error.extra.get("field") == "amount" else "loan_term_months",
            ) from None


def create_plan(
    session: Session,
    borrower_id: uuid.UUID,
    ask: PlanAsk,
    *,
    simulation_id: uuid.UUID | None,
    client_key: str | None,
) -> tuple[PurchasePlan, bool]:
    """Returns (plan, created); a repeat of the same Idempotency-Key returns the first plan."""
    price, monthly, months = ask.asset_price, ask.monthly_contribution, ask.contribution_months
    if simulation_id is not None:
        simulation = session.get(Simulation, simulation_id)
        if simulation is None or simulation.owner_id != borrower_id or simulation.method != "contributions":
            raise InvalidRequest(f"no plan simulation {simulation_id} of yours", field="simulation_id")
        product = session.get_one(LoanProduct, simulation.product_id)
        if not product.is_current:
            raise Conflict(f"product {product.code!r} changed since this simulation; simulate again")
        planned = simulation.result["contributions"]
        sim_monthly = Decimal(planned["monthly_contribution"])
        if (price, monthly, months) != (None, None, None) and (price, monthly, months) != (
            simulation.amount,
            sim_monthly,
            simulation.term_months,
        ):
            raise InvalidRequest("price, contribution and months come from the simulation; leave them out")
        price, monthly, months = simulation.amount, sim_monthly, simulation.term_months
    else:
        product = current_product(session, ask.product_code)
    if product.modality != "programmed_purchase":
        raise InvalidRequest(f"product {product.code!r} is not a programmed purchase", field="product")
    if price is None or monthly is None or months is None:
        raise InvalidRequest("give the asset's price, the monthly contribution and the months, or a simulation_id")
    if client_key:
        existing = session.scalars(
            select(PurchasePlan).where(PurchasePlan.borrower_id == borrower_id, PurchasePlan.client_key == client_key)
        ).first()
        if existing is not None:
            if (
                existing.asset_price,
                existing.monthly_contribution,
                existing.contribution_months,
                existing.loan_term_months,
                existing.seller_id,
                existing.asset_kind,
            ) != (price, monthly, months, ask.loan_term_months, ask.seller_id, ask.asset_kind):
                raise IdempotencyConflict(f"Idempotency-Key {client_key!r} was used for another plan")
            return existing, False
    credit = award_credit_product(session, product)
    for financing in (product, credit):
        if ask.asset_kind not in (financing.asset_kinds or []):
            raise InvalidRequest(
                f"product {financing.code!r} finances {', '.join(financing.asset_kinds or [])}, not {ask.asset_kind!r}",
                field="asset.kind",
            )
    check_plan_fits(session, product, price, monthly, months, ask.loan_term_months)
    check_seller(session, ask.seller_id)
    if session.get(BorrowerProfile, borrower_id) is None:
        raise InvalidRequest("complete your profile first (PUT /v1/users/me/profile): the award credit is scored")
    plan_id = uuid.uuid4()
    plan = PurchasePlan(
        id=plan_id,
        borrower_id=borrower_id,
        product_id=product.id,
        seller_id=ask.seller_id,
        asset_kind=ask.asset_kind,
        asset_description=ask.asset_description,
        asset_price=price,
        monthly_contribution=monthly,
        contribution_months=months,
        loan_term_months=ask.loan_term_months,
        currency=product.currency,
        status="saving",
        workflow_id=plan_workflow_id(plan_id),
        client_key=client_key,
        simulation_id=simulation_id,
    )
    session.add(plan)
    session.flush()
    return plan, True
