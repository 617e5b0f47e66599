"""Loan products as versioned data: create, change (a new version), look up."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import any_, bindparam, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Session

from core.direct_reads import DirectReads, ReadStatement
from core.errors import Conflict, InvalidRequest, NotFound
from domain.money import format_rate
from domain.schedule import Schedule, ScheduleError, build_schedule, check_schedulable_with_margin
from models.product_terms import ProductTerms
from models.products import LoanProduct


def terms_of(product: LoanProduct) -> ProductTerms:
    return ProductTerms(
        code=product.code,
        name=product.name,
        currency=product.currency,
        min_amount=product.min_amount,
        max_amount=product.max_amount,
        min_term_months=product.min_term_months,
        max_term_months=product.max_term_months,
        amortization_method=product.amortization_method,  # type: ignore[arg-type]
        rates_by_grade={k: v for k, v in product.rates_by_grade.items()},  # type: ignore[misc]
        interest_only_months=product.interest_only_months,
        platform_fee_percent=product.platform_fee_percent,
        reserve_fund_percent=product.reserve_fund_percent,
        funding_window_days=product.funding_window_days,
        funding_window_minutes=product.funding_window_minutes,
        min_investment=product.min_investment,
        max_investor_share_percent=product.max_investor_share_percent,
        late_fee_grace_days=product.late_fee_grace_days,
        late_fee_percent_per_day=product.late_fee_percent_per_day,
        default_after_days_overdue=product.default_after_days_overdue,
        requires_manual_approval=product.requires_manual_approval,
        max_debt_to_income_percent=product.max_debt_to_income_percent,
        market_min_price_percent=product.market_min_price_percent,
        market_max_price_percent=product.market_max_price_percent,
        market_fee_percent=product.market_fee_percent,
        market_min_holding_days=product.market_min_holding_days,
        modality=product.modality,  # type: ignore[arg-type]
        paying_months=product.paying_months,
        grace_months=product.grace_months,
        min_down_payment_percent=product.min_down_payment_percent,
        asset_kinds=product.asset_kinds,
        award_rule=product.award_rule,  # type: ignore[arg-type]
        award_share_percent=product.award_share_percent,
        cancellation_refund_percent=product.cancellation_refund_percent,
        award_credit_product=product.award_credit_product,
    )


def _row(terms: ProductTerms, version: int, created_by: uuid.UUID | None) -> LoanProduct:
    data = terms.model_dump()
    data["rates_by_grade"] = {grade: format_rate(rate) for grade, rate in terms.rates_by_grade.items()}
    return LoanProduct(**data, version=version, is_current=True, created_by=created_by)


# A product version's code and number never change (a change is a new version, change_product):
# remembered per process, so a page of loans does not ask for them again.
_LABELS: dict[uuid.UUID, tuple[str, int]] = {}
_LABELS_KEPT = 10_000


def product_labels(session: Session, product_ids: set[uuid.UUID]) -> dict[uuid.UUID, tuple[str, int]]:
    """(code, version) of each product version: from memory, else in one query."""
    found, missing = _remembered_labels(product_ids)
    if missing:
        rows = session.execute(_LABELS_QUERY, {"product_ids": list(missing)})
        found.update(_remember_labels(rows))
    return found


# Built once: the labels of the product versions given, for a session and for the event
# loop's one-statement reads alike.
_LABELS_QUERY = select(LoanProduct.id, LoanProduct.code, LoanProduct.version).where(
    LoanProduct.id == any_(bindparam("product_ids", type_=ARRAY(PG_UUID(as_uuid=True))))
)
_LABELS_READ = ReadStatement(_LABELS_QUERY)


async def read_product_labels(reads: DirectReads, product_ids: set[uuid.UUID]) -> dict[uuid.UUID, tuple[str, int]]:
    """product_labels for the event loop's one-statement reads."""
    found, missing = _remembered_labels(product_ids)
    if missing:
        found.update(_remember_labels(await reads.all(_LABELS_READ, {"product_ids": list(missing)})))
    return found


def _remembered_labels(
    product_ids: set[uuid.UUID],
) -> tuple[dict[uuid.UUID, tuple[str, int]], set[uuid.UUID]]:
    found = {product_id: label for product_id in product_ids if (label := _LABELS.get(product_id)) is not None}
    return found, product_ids - found.keys()


def _remember_labels(rows: Iterable[Any]) -> dict[uuid.UUID, tuple[str, int]]:
    fetched = {row.id: (row.code, row.version) for row in rows}
    if len(_LABELS) > _LABELS_KEPT:
        _LABELS.clear()
    _LABELS.update(fetched)
    return fetched


def current_product(session: Session, code: str, *, lock: bool = False) -> LoanProduct:
    query = select(LoanProduct).where(LoanProduct.code == code, LoanProduct.is_current)
    if lock:
        query = query.with_for_update()
    product = session.scalars(query).first()
    if product is None:
        raise NotFound(f"no loan product with code {code!r}")
    return product


def product_versions(session: Session, code: str) -> list[LoanProduct]:
    return list(session.scalars(select(LoanProduct).where(LoanProduct.code == code).order_by(LoanProduct.version)))


# The dates a product's rules are judged at: an ordinary schedule's rounding does not depend
# on them; a seasonal one's does, through the month it starts in (funding takes days, so a
# request must schedule whatever month it is paid out in).
ANY_START = (date(2000, 1, 1),)
EVERY_START_MONTH = tuple(date(2000, month, 1) for month in range(1, 13))


class ScheduleRules(Protocol):
    amortization_method: str
    interest_only_months: int
    paying_months: list[int] | None
    grace_months: int


def schedule_of(rules: ScheduleRules, amount: Decimal, rate: Decimal, term_months: int, start: date) -> Schedule:
    """The schedule a product (its terms or a stored version) gives a loan: ScheduleError if none."""
    return build_schedule(
        amount,
        rate,
        term_months,
        start,
        rules.amortization_method,  # type: ignore[arg-type]
        rules.interest_only_months,
        paying_months=rules.paying_months or (),
        grace_months=rules.grace_months,
    )


def judged_starts(rules: ScheduleRules) -> tuple[date, ...]:
    return EVERY_START_MONTH if rules.amortization_method == "seasonal" else ANY_START


def check_limits_schedulable(session: Session, terms: ProductTerms) -> None:
    """A product's limits must not admit a loan its schedule would refuse (domain/schedule.py:
    no last installment far above the others). Judged with a margin (two kopecks' moves of
    the last installment), a rule that only gets harder as the amount falls and the term
    grows: the smallest amount over the longest term, at each of the product's rates,
    answers for every loan the limits allow. (Checked when a product is created or changed,
    not when a stored version is read back.) A programmed purchase's limits are the asset's
    price and the contribution months; its award credit product must exist and be one."""
    if terms.modality == "programmed_purchase":
        assert terms.award_credit_product is not None
        credit = session.scalars(
            select(LoanProduct).where(LoanProduct.code == terms.award_credit_product, LoanProduct.is_current)
        ).first()
        if credit is None or credit.modality != "award_credit":
            raise InvalidRequest(
                f"award_credit_product {terms.award_credit_product!r} is not an award credit product",
                field="award_credit_product",
            )
        return
    for grade, rate in sorted(terms.rates_by_grade.items()):
        try:
            if terms.amortization_method == "annuity":
                check_schedulable_with_margin(terms.min_amount, rate, terms.max_term_months, terms.interest_only_months)
            else:
                for start in judged_starts(terms):
                    schedule_of(terms, terms.min_amount, rate, terms.max_term_months, start)
                    if terms.amortization_method == "seasonal":  # a seasonal term may start too late for a harvest
                        schedule_of(terms, terms.min_amount, rate, terms.min_term_months, start)
        except ScheduleError as error:
            raise InvalidRequest(
                f"{terms.min_amount:.2f} over {terms.max_term_months} months at grade {grade}'s "
                f"{format_rate(rate)}% cannot be scheduled: {error}",
                field="rates_by_grade",
            ) from None


def create_product(session: Session, terms: ProductTerms, created_by: uuid.UUID | None = None) -> LoanProduct:
    check_limits_schedulable(session, terms)
    if session.scalars(select(LoanProduct.id).where(LoanProduct.code == terms.code)).first():
        raise Conflict(f"product {terms.code!r} exists; change it with PUT to make a new version")
    product = _row(terms, 1, created_by)
    session.add(product)
    session.flush()
    return product


def change_product(
    session: Session, code: str, terms: ProductTerms, created_by: uuid.UUID | None = None
) -> LoanProduct:
    """Writes version n+1 and makes it current; loans keep pointing at the version they were
    made under. The same terms again change nothing (no empty versions)."""
    if terms.code != code:
        raise Conflict("a product's code cannot change; create a new product instead")
    current = current_product(session, code, lock=True)
    if terms_of(current) == terms:
        return current
    check_limits_schedulable(session, terms)
    session.execute(update(LoanProduct).where(LoanProduct.id == current.id).values(is_current=False))
    product = _row(terms, current.version + 1, created_by)
    session.add(product)
    session.flush()
    return product


def ensure_product(session: Session, terms: ProductTerms) -> LoanProduct:
    """For the seed: create the product if no version exists; leave an existing one alone
    (an operator may have changed it since)."""
    existing = session.scalars(
        select(LoanProduct).where(LoanProduct.code == terms.code, LoanProduct.is_current)
    ).first()
    return existing or create_product(session, terms)


def check_request_fits(product: LoanProduct, amount, term_months: int) -> None:
    """A loan (or a simulation of one) must fit the product's ranges: 422 with the reason."""
    if not product.min_amount <= amount <= product.max_amount:
        raise InvalidRequest(
            f"amount {amount:.2f} is outside product {product.code!r}: "
            f"{product.min_amount:.2f} to {product.max_amount:.2f} {product.currency}",
            field="amount",
        )
    if not product.min_term_months <= term_months <= product.max_term_months:
        raise InvalidRequest(
            f"term of {term_months} months is outside product {product.code!r}: "
            f"{product.min_term_months} to {product.max_term_months} months",
            field="term_months",
        )
    if product.modality == "programmed_purchase":
        return  # a plan's price and months; its award credit is checked at the award
    # Whatever grade scoring gives it, and whatever month it is paid out in, the loan's
    # schedule must exist (domain/schedule.py's rules: no last installment far above the
    # others): refused now, not after funding.
    for grade in sorted(product.rates_by_grade):
        for start in judged_starts(product):
            try:
                schedule_of(product, Decimal(amount), product.rate_for_grade(grade), term_months, start)
            except ScheduleError as error:
                raise InvalidRequest(f"at grade {grade}'s rate: {error}", field="term_months") from None
