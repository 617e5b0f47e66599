"""FastAPI dependencies: one database transaction per request, the current user, roles."""

from __future__ import annotations

import collections
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import Select, bindparam, literal_column, select, true
from sqlalchemy.orm import Session, make_transient_to_detached

from api.temporal import TemporalClientHolder
from core.db import unit_of_work
from core.direct_reads import DirectReads, ReadStatement
from core.errors import Forbidden, Unauthorized
from core.security import TokenClaims, decode_access_token, token_is_live
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
    return _detached_user(row._asdict())


def _detached_user(columns: dict[str, Any]) -> User:
    user = User(**columns)
    make_transient_to_detached(user)
    return user


class CallerRead:
    """A route's one-statement read together with its caller's user row: whether the caller
    is still live and what the route reads, in one round trip instead of two (the API's most
    frequent reads). The caller is checked by the same rule as get_current_user (live_user),
    before the route looks at a single row. A route that reads this way marks itself with
    @checks_caller_in_route (see there).

    `resource` takes its parameters from the route, the caller's id too if it needs it (the
    caller's own row is found by `caller_id`, which only this class sets). `order`: the
    resource's order, as (column, descending) pairs, given to it and again to the answer (a
    join does not keep a subquery's order); `paged`: LIMIT :limit OFFSET :offset after it."""

    def __init__(self, resource: Select[Any], order: Sequence[tuple[Any, bool]] = (), *, paged: bool = False) -> None:
        if order:
            resource = resource.order_by(*(column.desc() if descending else column for column, descending in order))
        if paged:
            resource = resource.limit(bindparam("limit")).offset(bindparam("offset"))
        self._resource_keys = list(resource.selected_columns.keys())
        found = resource.add_columns(literal_column("1").label("resource_found")).subquery("resource")
        caller = [column.label(f"caller_{column.key}") for column in User.__table__.columns]
        self._caller_keys = [column.key for column in User.__table__.columns]
        query = (
            select(*caller, *(found.c[key] for key in self._resource_keys), found.c.resource_found)
            .select_from(User.__table__.outerjoin(found, true()))
            .where(User.id == bindparam("caller_id"))
            .order_by(
                *(found.c[column.key].desc() if descending else found.c[column.key] for column, descending in order)
            )
        )
        self._statement = ReadStatement(query)
        self._resource_row = collections.namedtuple("Row", self._resource_keys)  # type: ignore[misc]

    async def read(self, reads: DirectReads, claims: TokenClaims, params: dict[str, Any]) -> tuple[User, list[Any]]:
        """The live caller (401 otherwise) and the resource's rows."""
        if "caller_id" in params:
            raise ValueError("caller_id is the caller's, from the token; a resource names its own parameters")
        rows = await reads.all(self._statement, {**params, "caller_id": claims.user_id})
        callers = len(self._caller_keys)
        caller = _detached_user(dict(zip(self._caller_keys, rows[0][:callers], strict=True))) if rows else None
        user = live_user(caller, claims)  # (no row at all: no such user)
        end = callers + len(self._resource_keys)
        return user, [self._resource_row._make(row[callers:end]) for row in rows if row.resource_found is not None]


# Routes that check their caller in their own read (CallerRead) rather than by a dependency.
_CHECKS_CALLER_IN_ROUTE = "__checks_caller_in_route__"
F = TypeVar("F", bound=Callable[..., Any])


def checks_caller_in_route(route: F) -> F:
    """Marks a route that takes AccessClaims and checks its caller in its own read: FastAPI
    validates a route's parameters after its dependencies, so such a route's invalid request
    from a caller no longer live would be answered 422 instead of 401; the validation error
    handler asks dead_caller first for these routes (api/problems.py)."""
    setattr(route, _CHECKS_CALLER_IN_ROUTE, True)
    return route


async def dead_caller(request: Request) -> Unauthorized | None:
    """For a route marked checks_caller_in_route whose request did not validate: the 401 its
    caller would have had from get_current_user, if any. (Its claims were decoded already: a
    missing, invalid or expired token was answered 401 before the route's parameters.)"""
    route = request.scope.get("route")
    if not getattr(getattr(route, "endpoint", None), _CHECKS_CALLER_IN_ROUTE, False):
        return None
    try:
        await get_current_user(
            request, await get_access_claims(request.app.state.settings, await oauth2_scheme(request))
        )
    except Unauthorized as refusal:
        return refusal
    return None


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


async def get_access_claims(settings: SettingsDep, token: Annotated[str | None, Depends(oauth2_scheme)]) -> TokenClaims:
    """The bearer token's claims (401 without one, or with one not ours, expired or of another
    type). Not yet whether its user is still live: get_current_user, CallerRead."""
    if not token:
        raise Unauthorized("this call needs a bearer token (POST /v1/auth/token)")
    return decode_access_token(settings, token)


AccessClaims = Annotated[TokenClaims, Depends(get_access_claims)]


def live_user(user: User | None, claims: TokenClaims) -> User:
    """A deleted or blocked user, or one whose tokens were revoked, is refused at once."""
    if user is None or not token_is_live(user, claims.token_version):
        raise Unauthorized("the access token is no longer valid")
    return user


async def get_current_user(request: Request, claims: AccessClaims) -> User:
    """Read by one statement on the event loop (core/direct_reads.py), every request: async
    routes then hold no database connection while they wait on Temporal (a funding rush would
    otherwise drain the pool), and no thread is taken for it."""
    return live_user(await read_user(request.app.state.reads, claims.user_id), claims)


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
WALLET_OWNERS = (Role.borrower, Role.investor, Role.seller)
WalletOwner = Annotated[User, Depends(require_roles(*WALLET_OWNERS))]
BorrowerUser = Annotated[User, Depends(require_roles(Role.borrower))]
InvestorUser = Annotated[User, Depends(require_roles(Role.investor))]
