"""Sign-up, the current user, the borrower's profile, and staff accounts."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Request, status
from pydantic import EmailStr, Field
from sqlalchemy import func, select

from api.client_address import client_address
from api.deps import BorrowerUser, CurrentUser, OperatorUser, SessionDep
from api.request_limits import SignupLimit
from api.schemas.base import StrictModel
from api.schemas.users import BlockIn, ProfileIn, ProfileOut, UserCreate, UserOut
from auth.login_limits import remember_address
from auth.refresh_tokens import revoke_all_for_user
from core.errors import Conflict, NotFound
from core.security import hash_password
from ledger.accounts import open_wallet
from models.users import BorrowerProfile, User

router = APIRouter(prefix="/v1", tags=["users"])
log = logging.getLogger("api")


def create_user(session, email: str, password: str, role: str) -> User:
    email = email.lower()
    if session.scalar(select(func.count()).select_from(User).where(User.email == email)):
        raise Conflict("a user with this email already exists")
    user = User(email=email, password_hash=hash_password(password), role=role)
    session.add(user)
    session.flush()
    if role in ("borrower", "investor", "seller"):
        open_wallet(session, user.id, role)
    return user


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserOut, dependencies=[SignupLimit])
def register(body: UserCreate, session: SessionDep, request: Request) -> User:
    user = create_user(session, str(body.email), body.password, body.role)
    # Where the owner signed up is theirs: an attacker's guesses from elsewhere do not slow
    # their first login from here (auth/login_limits.py).
    remember_address(session, user.email, client_address(request), datetime.now(UTC))
    return user


@router.get("/users/me", response_model=UserOut)
def me(user: CurrentUser) -> User:
    return user


@router.get("/users/me/profile", response_model=ProfileOut)
def get_profile(user: BorrowerUser, session: SessionDep) -> BorrowerProfile:
    """What scoring will read; 404 until the borrower has filled it in."""
    profile = session.get(BorrowerProfile, user.id)
    if profile is None:
        raise NotFound("no profile yet: PUT /v1/users/me/profile")
    return profile


@router.put("/users/me/profile", response_model=ProfileOut)
def put_profile(body: ProfileIn, user: BorrowerUser, session: SessionDep) -> BorrowerProfile:
    profile = session.get(BorrowerProfile, user.id, with_for_update=True)
    now = datetime.now(UTC)
    if profile is None:
        profile = BorrowerProfile(user_id=user.id, **body.model_dump(), updated_at=now)
        session.add(profile)
    else:
        for field, value in body.model_dump().items():
            setattr(profile, field, value)
        profile.updated_at = now
    session.flush()
    return profile


class StaffCreate(StrictModel):
    email: EmailStr
    password: str = Field(min_length=12, max_length=128)
    role: Literal["operator", "compliance"]


@router.post("/operator/users", status_code=status.HTTP_201_CREATED, response_model=UserOut, tags=["operator"])
def create_staff(body: StaffCreate, operator: OperatorUser, session: SessionDep) -> User:
    """Operators create operator and compliance accounts; nobody can sign up as staff."""
    return create_user(session, str(body.email), body.password, body.role)


@router.post("/operator/users/{user_id}/block", response_model=UserOut, tags=["operator"])
def block_user(user_id: uuid.UUID, body: BlockIn, operator: OperatorUser, session: SessionDep) -> User:
    """The user can no longer log in, and every token they hold stops working at once."""
    if user_id == operator.id:
        raise Conflict("an operator cannot block their own account")
    user = session.get(User, user_id, with_for_update=True)
    if user is None:
        raise NotFound(f"no user {user_id}")
    now = datetime.now(UTC)
    user.is_active = False
    user.token_version += 1
    revoke_all_for_user(session, user.id, now)
    log.warning("user %s blocked by operator %s: %s", user.id, operator.id, body.reason)
    session.flush()
    return user


@router.post("/operator/users/{user_id}/unblock", response_model=UserOut, tags=["operator"])
def unblock_user(user_id: uuid.UUID, operator: OperatorUser, session: SessionDep) -> User:
    """The user may log in again (their old tokens stay dead)."""
    user = session.get(User, user_id, with_for_update=True)
    if user is None:
        raise NotFound(f"no user {user_id}")
    user.is_active = True
    log.warning("user %s unblocked by operator %s", user.id, operator.id)
    session.flush()
    return user
