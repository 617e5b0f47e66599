"""The products `make run` seeds, as data (DESIGN.md: the `standard` product)."""

from __future__ import annotations

from decimal import Decimal

from models.product_terms import ProductTerms

STANDARD = ProductTerms(
    code="standard",
    name="Standard consumer loan",
    currency="RUB",
    min_amount=Decimal("10000.00"),
    max_amount=Decimal("5000000.00"),
    min_term_months=3,
    max_term_months=36,
    amortization_method="annuity",
    rates_by_grade={
        "A": Decimal("14.00"),
        "B": Decimal("17.00"),
        "C": Decimal("20.00"),
        "D": Decimal("24.00"),
        "E": Decimal("29.00"),
    },
    interest_only_months=0,
    platform_fee_percent=Decimal("1.000"),
    reserve_fund_percent=Decimal("2.000"),
    funding_window_days=14,
    min_investment=Decimal("1000.00"),
    max_investor_share_percent=Decimal("50.000"),
    late_fee_grace_days=3,
    late_fee_percent_per_day=Decimal("0.100"),
    default_after_days_overdue=90,
    requires_manual_approval=False,
    max_debt_to_income_percent=Decimal("50.000"),
)

# Financing modalities (README "Financing modalities"): vehicles and agricultural machinery.
VEHICLE_KINDS = ["car", "motorcycle", "truck", "tractor", "combine"]


def _variant(base: ProductTerms, **changes: object) -> ProductTerms:
    """A product like `base` with `changes`, validated as any product is."""
    return ProductTerms.model_validate({**base.model_dump(), **changes})


VEHICLE_AWARD_CREDIT = _variant(
    STANDARD,
    code="vehicle-award-credit",
    name="Award credit: a vehicle paid to its seller",
    modality="award_credit",
    min_amount=Decimal("50000.00"),
    max_amount=Decimal("20000000.00"),
    min_term_months=6,
    max_term_months=60,
    asset_kinds=VEHICLE_KINDS,
    min_down_payment_percent=Decimal("10.000"),
)

AGRO_SEASONAL = _variant(
    STANDARD,
    code="agro-seasonal",
    name="Agricultural plan: machinery paid at harvest",
    modality="award_credit",
    amortization_method="seasonal",
    # the months the farm sells: March (the stored harvest) and September (the new one); months
    # half a year apart keep every payment above the interest its months accrue
    paying_months=[3, 9],
    grace_months=0,
    min_amount=Decimal("100000.00"),
    max_amount=Decimal("30000000.00"),
    min_term_months=12,
    max_term_months=60,
    asset_kinds=["tractor", "combine", "seeder", "sprayer"],
    min_down_payment_percent=Decimal("10.000"),
)

VEHICLE_PLAN = _variant(
    STANDARD,
    code="vehicle-plan",
    name="Programmed purchase: contributions, a monthly award draw",
    modality="programmed_purchase",
    # the asset's price and the number of contributions
    min_amount=Decimal("100000.00"),
    max_amount=Decimal("20000000.00"),
    min_term_months=3,
    max_term_months=60,
    asset_kinds=VEHICLE_KINDS,
    award_rule="draw",
    cancellation_refund_percent=Decimal("90.000"),
    award_credit_product="vehicle-award-credit",
)

VEHICLE_PLAN_SHARE = _variant(
    VEHICLE_PLAN,
    code="vehicle-plan-share",
    name="Programmed purchase: awarded at 30% of the price",
    award_rule="share_reached",
    award_share_percent=Decimal("30.000"),
)

# In the order they must be made (a plan names its award credit product).
CATALOG = (STANDARD, VEHICLE_AWARD_CREDIT, AGRO_SEASONAL, VEHICLE_PLAN, VEHICLE_PLAN_SHARE)
