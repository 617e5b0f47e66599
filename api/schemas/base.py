"""Shared pieces of the API schemas: strict models and exact money."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, field_validator

from domain.money import format_money, format_rate

# The largest amount the platform accepts anywhere: one billion. NUMERIC(15,2) could hold
# more, but an amount above this is a typo or an attack, not a loan.
MAX_AMOUNT = Decimal("1000000000.00")


# [0-9], not \d: \d matches every script's digits ("１０００", "١٠٠٠"), which Decimal() reads.
_PLAIN_DECIMAL = re.compile(r"-?[0-9]{1,20}(\.[0-9]{1,20})?")


def _parse_amount(value: Any) -> Any:
    # JSON floats lose kopecks (0.1 + 0.2): amounts are strings or integers. A float that
    # prints with at most two decimals is accepted as what it prints.
    if isinstance(value, bool):
        raise ValueError('an amount is a decimal string such as "1234.56"')
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        stripped = value.strip()
        if not _PLAIN_DECIMAL.fullmatch(stripped):
            raise ValueError('an amount is a plain decimal string such as "1234.56"')
        return stripped
    return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, (list, tuple, set)):
        return any(_has_nul(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, BaseModel):
        return False  # a nested model checks its own fields
    return False


class StrictModel(BaseModel):
    """Request bodies: unknown fields are refused (no mass assignment), and so is text with a
    NUL character (PostgreSQL cannot store it)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul_characters(cls, value: Any) -> Any:
        if _has_nul(value):
            raise ValueError("text may not contain NUL characters")
        return value


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# An amount of money in a request: positive, at most two decimals, within MAX_AMOUNT.
Amount = Annotated[
    Decimal,
    BeforeValidator(_parse_amount),
    Field(gt=0, le=MAX_AMOUNT, max_digits=15, decimal_places=2, allow_inf_nan=False, examples=["1000.00"]),
]

# An amount of money in a response: always a string with two decimals.
Money = Annotated[Decimal, PlainSerializer(format_money, return_type=str, when_used="json")]

# An annual interest rate in percent (14.00 = 14 % a year): 0 to 200, four decimals at most,
# as lenders price them (9.4822).
RatePercent = Annotated[
    Decimal,
    BeforeValidator(_parse_amount),
    Field(ge=0, le=200, max_digits=7, decimal_places=4, allow_inf_nan=False, examples=["17.00", "9.4822"]),
]


# An annual rate in a response.
Rate = Annotated[Decimal, PlainSerializer(format_rate, return_type=str, when_used="json")]

# A whole number of months; "12", 12.5 or true are refused.
TermMonths = Annotated[int, Field(strict=True, ge=1, le=600, examples=[12])]
