"""FastAPI dependencies: one database transaction per request, the current user, roles."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, TypeVar

import anyio.to_thread
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, make_transient_to_detached

from api.temporal import TemporalClientHolder
from core.db import unit_of_work
from core.direct_reads import DirectReads, ReadStatement
from core.errors import Forbidden, Unauthorized
from core.security import decode_access_token, token_is_live
from core.settings import Settings
from models.users import Role, User

T = TypeVar("T")

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/v1/auth/token", auto_error=False)

# The whole user row (routes read any of it): built once.
_USER = ReadStatement(select(*User.__table__.columns).where(User.id == bindparam("user_id")))


async def read_user(reads: DirectReads, user_id: uuid.UUID) -> User | None:
    """The user, as an ORM object detached from any session (as one a closed session loaded)."""
    row = await reads.one(_USER, {"user_id": user_id})
    if row is None:
        return None
    user = User(**row._asdict())
    make_transient_to_detached(user)
    return user


# Dependencies that only read the request are `async def`: FastAPI runs a plain `def` one on a
# thread, a hop that costs more than what it does.
async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_db(request: Request) -> Iterator[Session]:
    """The request's unit of work: committed when the route returns (before the response is
    sent, see scope="function"), rolled back on any error. Routes never commit."""
    with unit_of_work(request.app.state.sessionmaker) as session:
        yield session


async def in_db(request: Request, fn: Callable[[Session], T]) -> T:
    """For async routes (those that talk to Temporal): blocking database work runs on a
    thread, in its own transaction, committed before the route goes on."""

    def work() -> T:
        with unit_of_work(request.app.state.sessionmaker) as session:
            return fn(session)

    return await anyio.to_thread.run_sync(work)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_db, scope="function")]


async def get_temporal(request: Request) -> TemporalClientHolder:
    return request.app.state.temporal


TemporalDep = Annotated[TemporalClientHolder, Depends(get_temporal)]


async def get_current_user(
    request: Request, settings: SettingsDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> User:
    """Read by one statement on the event loop (core/direct_reads.py), every request: async
    routes then hold no database connection while they wait on Temporal (a funding rush would
    otherwise drain the pool), and no thread is taken for it."""
    if not token:
        raise Unauthorized("this call needs a bearer token (POST /v1/auth/token)")
    claims = decode_access_token(settings, token)
    user = await read_user(request.app.state.reads, claims.user_id)
    # A deleted or blocked user, or one whose tokens were revoked, is refused at once.
    if not token_is_live(user, claims.token_version):
        raise Unauthorized("the access token is no longer valid")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def check_role(user: User, roles: tuple[Role, ...]) -> User:
    """The one role check, for the API's routes and the back office's pages alike."""
    allowed = {r.value for r in roles}
    if user.role not in allowed:
        raise Forbidden(f"this is for {', '.join(sorted(allowed))}; you are {user.role}")
    return user


def require_roles(*roles: Role) -> Callable[[User], Awaitable[User]]:
    async def check(user: CurrentUser) -> User:
        return check_role(user, roles)

    return check


OperatorUser = Annotated[User, Depends(require_roles(Role.operator))]
OperatorOrCompliance = Annotated[User, Depends(require_roles(Role.operator, Role.compliance))]
WalletOwner = Annotated[User, Depends(require_roles(Role.borrower, Role.investor, Role.seller))]
BorrowerUser = Annotated[User, Depends(require_roles(Role.borrower))]
InvestorUser = Annotated[User, Depends(require_roles(Role.investor))]
