"""The terms of a loan product as a value: validated once, used by the API, the seed,
activities and (as a snapshot) the loan workflow."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.schedule import RATE_STEP
from models.numbers import AsciiDecimal

RISK_GRADES = ("A", "B", "C", "D", "E")

Percent = Decimal


class ProductTerms(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(pattern=r"^[a-z][a-z0-9_-]{1,49}$", description="lower-case identifier, e.g. `standard`")
    name: str = Field(min_length=1, max_length=200)
    currency: str = Field(default="RUB", pattern=r"^[A-Z]{3}$")
    min_amount: AsciiDecimal = Field(gt=0, le=Decimal("1000000000"), max_digits=15, decimal_places=2)
    max_amount: AsciiDecimal = Field(gt=0, le=Decimal("1000000000"), max_digits=15, decimal_places=2)
    min_term_months: int = Field(ge=1, le=600)
    max_term_months: int = Field(ge=1, le=600)
    amortization_method: Literal["annuity", "differentiated", "seasonal"]
    # % a year for each risk grade; every grade A..E must have a rate.
    rates_by_grade: dict[Literal["A", "B", "C", "D", "E"], AsciiDecimal]
    interest_only_months: int = Field(default=0, ge=0, le=24)
    platform_fee_percent: AsciiDecimal = Field(ge=0, lt=100, max_digits=7, decimal_places=3)
    reserve_fund_percent: AsciiDecimal = Field(default=Decimal("2.000"), ge=0, lt=100, max_digits=7, decimal_places=3)
    funding_window_days: int = Field(ge=1, le=365)
    funding_window_minutes: int | None = Field(
        default=None,
        ge=1,
        le=60 * 24 * 365,
        description="overrides funding_window_days when set (short windows for demos and tests)",
    )
    min_investment: AsciiDecimal = Field(default=Decimal("1000.00"), gt=0, max_digits=15, decimal_places=2)
    max_investor_share_percent: AsciiDecimal = Field(gt=0, le=100, max_digits=7, decimal_places=3)
    late_fee_grace_days: int = Field(ge=0, le=365)
    late_fee_percent_per_day: AsciiDecimal = Field(ge=0, le=1, max_digits=7, decimal_places=3)
    default_after_days_overdue: int = Field(ge=1, le=3650)
    requires_manual_approval: bool = False
    max_debt_to_income_percent: AsciiDecimal = Field(
        default=Decimal("50.000"),
        gt=0,
        le=100,
        max_digits=7,
        decimal_places=3,
        description="the monthly payment plus existing obligations may take at most this % of monthly income",
    )

    # The secondary market (README "Secondary market"): the price range a listing may ask, in %
    # of the principal sold; the platform's fee on a trade, % of the price, paid by the seller;
    # how many days a holding is kept before it may be listed.
    market_min_price_percent: AsciiDecimal = Field(
        default=Decimal("90.00"), gt=0, le=1000, max_digits=7, decimal_places=2
    )
    market_max_price_percent: AsciiDecimal = Field(
        default=Decimal("110.00"), gt=0, le=1000, max_digits=7, decimal_places=2
    )
    market_fee_percent: AsciiDecimal = Field(default=Decimal("1.000"), ge=0, lt=100, max_digits=7, decimal_places=3)
    market_min_holding_days: int = Field(default=30, ge=0, le=3650)

    # Financing modalities (README "Financing modalities").
    modality: Literal["loan", "award_credit", "programmed_purchase"] = Field(
        default="loan",
        description="loan: money to the borrower's wallet; award_credit: a loan for a named asset, paid to its "
        "seller; programmed_purchase: monthly contributions until the asset is awarded, the rest then lent "
        "as an award credit (amount and term limits are then the asset's price and the contribution months)",
    )
    paying_months: list[int] | None = Field(
        default=None, description="seasonal plans: the months (1-12) payments fall in, e.g. harvest months"
    )
    grace_months: int = Field(default=0, ge=0, le=24, description="seasonal plans: months before the first payment")
    min_down_payment_percent: AsciiDecimal = Field(
        default=Decimal("0.000"),
        ge=0,
        lt=100,
        max_digits=7,
        decimal_places=3,
        description="award credit: the least down payment, % of the asset's price",
    )
    asset_kinds: list[str] | None = Field(
        default=None, description="award credit and programmed purchase: the kinds of asset financed"
    )
    award_rule: Literal["share_reached", "draw", "bid"] | None = Field(
        default=None,
        description="programmed purchase: awarded when contributions reach award_share_percent of the price, "
        "or by the monthly award event's draw or highest bid",
    )
    award_share_percent: AsciiDecimal | None = Field(default=None, gt=0, lt=100, max_digits=7, decimal_places=3)
    cancellation_refund_percent: AsciiDecimal | None = Field(
        default=None,
        ge=0,
        le=100,
        max_digits=7,
        decimal_places=3,
        description="programmed purchase: % of the contributions a cancelled plan gets back (the rest is the "
        "platform's cancellation fee)",
    )
    award_credit_product: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_-]{1,49}$",
        description="programmed purchase: the award credit product its remainder is lent under",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ProductTerms:
        self._check_modality()
        if self.max_amount < self.min_amount:
            raise ValueError("max_amount must not be below min_amount")
        if self.max_term_months < self.min_term_months:
            raise ValueError("max_term_months must not be below min_term_months")
        if set(self.rates_by_grade) != set(RISK_GRADES):
            raise ValueError(f"rates_by_grade needs a rate for each grade {', '.join(RISK_GRADES)}")
        for grade, rate in self.rates_by_grade.items():
            if rate < 0 or rate > 200 or rate != rate.quantize(RATE_STEP):
                raise ValueError(f"rate for grade {grade} must be 0 to 200 % a year with at most four decimals")
        if self.platform_fee_percent + self.reserve_fund_percent >= 100:
            raise ValueError("platform fee and reserve contribution together must stay below 100%")
        if self.min_investment > self.max_amount:
            raise ValueError("min_investment must not exceed max_amount")
        if self.market_max_price_percent < self.market_min_price_percent:
            raise ValueError("market_max_price_percent must not be below market_min_price_percent")
        if self.interest_only_months >= self.min_term_months:
            raise ValueError("interest_only_months must be shorter than the shortest term")
        return self

    def _check_modality(self) -> None:
        if self.amortization_method == "seasonal":
            months = self.paying_months or []
            if not months or any(not 1 <= m <= 12 for m in months) or len(set(months)) != len(months):
                raise ValueError("a seasonal plan names its paying_months: 1 to 12, each once")
            if self.interest_only_months:
                raise ValueError("a seasonal plan has grace_months, not interest_only_months")
            if self.grace_months >= self.min_term_months:
                raise ValueError("grace_months must be shorter than the shortest term")
        elif self.paying_months is not None or self.grace_months:
            raise ValueError("paying_months and grace_months are for the seasonal amortization_method")
        kinds = self.asset_kinds
        if kinds is not None and (
            not kinds or len(set(kinds)) != len(kinds) or any(not k or len(k) > 50 or k != k.strip() for k in kinds)
        ):
            raise ValueError("asset_kinds: distinct names of 1 to 50 characters")
        if self.modality == "loan":
            if kinds is not None or self.min_down_payment_percent:
                raise ValueError("asset_kinds and min_down_payment_percent are for award credit products")
        elif not kinds:
            raise ValueError(f"a {self.modality} product names the asset_kinds it finances")
        plan_fields = (self.award_rule, self.cancellation_refund_percent, self.award_credit_product)
        if self.modality == "programmed_purchase":
            if None in plan_fields:
                raise ValueError(
                    "a programmed purchase needs award_rule, cancellation_refund_percent and award_credit_product"
                )
            if (self.award_rule == "share_reached") != (self.award_share_percent is not None):
                raise ValueError("award_share_percent is set exactly when award_rule is share_reached")
        elif any(f is not None for f in (*plan_fields, self.award_share_percent)):
            raise ValueError(
                "award_rule, award_share_percent, cancellation_refund_percent and award_credit_product "
                "are for programmed purchases"
            )

    def rate_for_grade(self, grade: str) -> Decimal:
        return self.rates_by_grade[grade]  # type: ignore[index]
