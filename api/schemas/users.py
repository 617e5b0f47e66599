from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import EmailStr, Field, field_validator

from api.schemas.base import Money, ResponseModel, StrictModel
from models.numbers import AsciiDecimal


class UserCreate(StrictModel):
    email: EmailStr
    password: str = Field(min_length=10, max_length=128, description="10 to 128 characters")
    # Only these two roles may sign up; operators and compliance are created by operators.
    role: Literal["borrower", "investor"]

    @field_validator("password")
    @classmethod
    def _not_trivial(cls, value: str) -> str:
        if len(set(value)) < 4:
            raise ValueError("the password is too simple")
        return value


class UserOut(ResponseModel):
    id: uuid.UUID
    email: str
    role: str
    is_active: bool = True
    created_at: datetime | None = None


class TokenOut(ResponseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    # Seconds: the access token is short-lived; POST /v1/auth/refresh gets a new pair.
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


class RefreshIn(StrictModel):
    refresh_token: str = Field(min_length=20, max_length=200)


class BlockIn(StrictModel):
    reason: str = Field(min_length=3, max_length=500)


class ProfileIn(StrictModel):
    monthly_income: AsciiDecimal = Field(ge=0, le=Decimal("100000000"), max_digits=15, decimal_places=2)
    monthly_obligations: AsciiDecimal = Field(ge=0, le=Decimal("100000000"), max_digits=15, decimal_places=2)
    employment_months: int = Field(ge=0, le=12 * 70, strict=True)


class ProfileOut(ResponseModel):
    monthly_income: Money
    monthly_obligations: Money
    employment_months: int
    updated_at: datetime
