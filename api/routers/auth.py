from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import select

from api.deps import SessionDep, SettingsDep
from api.schemas.users import TokenOut
from core.errors import Unauthorized
from core.security import issue_access_token, verify_password
from models.users import User

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/token", response_model=TokenOut)
def login(form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep,
          settings: SettingsDep) -> TokenOut:
    user = session.scalars(select(User).where(User.email == form.username.strip().lower())).first()
    # One answer for an unknown email and a wrong password: no account enumeration.
    if not verify_password(form.password, user.password_hash if user else None) or user is None:
        raise Unauthorized("wrong email or password")
    if not user.is_active:
        raise Unauthorized("wrong email or password")
    token, expires_in = issue_access_token(settings, user.id, user.role, user.token_version)
    return TokenOut(access_token=token, expires_in=expires_in)
