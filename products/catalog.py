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
