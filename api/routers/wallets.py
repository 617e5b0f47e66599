"""A user's own wallet: balance, statement, deposits and withdrawals."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from sqlalchemy import select

from api.deps import (
    WALLET_OWNERS,
    AccessClaims,
    CallerRead,
    CurrentUser,
    SessionDep,
    WalletOwner,
    check_role,
    checks_caller_in_route,
)
from api.idempotency import IdempotencyGuard
from api.schemas.wallets import (
    DepositIn,
    DepositOut,
    StatementLineOut,
    StatementPage,
    WalletOut,
    WithdrawalIn,
    WithdrawalOut,
)
from core.errors import NotFound
from ledger.accounts import NO_WALLET, wallet_of_user
from ledger.cash import request_deposit, request_withdrawal
from ledger.wallets import WalletBalance, own_wallet, own_wallet_query, wallet_balance, wallet_statement
from models.ledger import Deposit, Wallet, Withdrawal
from models.users import Role

router = APIRouter(prefix="/v1/wallets", tags=["wallets"])

MAX_PAGE = 200


def _wallet_out(session, wallet: Wallet) -> WalletOut:
    return _wallet_answer(wallet.type, wallet_balance(session, wallet.id))


def _wallet_answer(wallet_type: str, balance: WalletBalance) -> WalletOut:
    return WalletOut(
        id=balance.wallet_id,
        type=wallet_type,
        currency=balance.currency,
        balance=balance.balance,
        reserved=balance.reserved,
        available=balance.available,
    )


# The caller and their wallet with its balances, in one statement.
_MY_WALLET = CallerRead(own_wallet_query())


@router.get("/me", response_model=WalletOut)
@checks_caller_in_route
async def my_wallet(claims: AccessClaims, request: Request) -> WalletOut:
    user, found = await _MY_WALLET.read(request.app.state.reads, claims, {"user_id": claims.user_id})
    check_role(user, WALLET_OWNERS)
    if not found:
        raise NotFound(NO_WALLET)
    mine = own_wallet(found[0])
    return _wallet_answer(mine.wallet_type, mine.balance)


@router.get("/me/transactions", response_model=StatementPage)
def my_statement(
    user: WalletOwner,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="position cursor from next_before")] = None,
) -> StatementPage:
    wallet = wallet_of_user(session, user.id)
    lines = wallet_statement(session, wallet.id, limit=limit, before=before)
    return StatementPage(
        items=[StatementLineOut.model_validate(line, from_attributes=True) for line in lines],
        next_before=lines[-1].position if len(lines) == limit else None,
    )


@router.get("/{wallet_id}", response_model=WalletOut)
def wallet_by_id(wallet_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> WalletOut:
    """The owner, operators and compliance; anyone else gets 404 (no existence leak)."""
    wallet = session.get(Wallet, wallet_id)
    staff = user.role in (Role.operator.value, Role.compliance.value)
    if wallet is None or (wallet.user_id != user.id and not staff):
        raise NotFound(f"no wallet {wallet_id}")
    return _wallet_out(session, wallet)


@router.post("/deposits", status_code=status.HTTP_201_CREATED, response_model=DepositOut)
def create_deposit(
    body: DepositIn, user: WalletOwner, session: SessionDep, response: Response, idempotency_key: IdempotencyGuard
) -> Deposit:
    """Announces a bank payment; the money is in the wallet once an operator confirms it."""
    deposit, created = request_deposit(
        session, user.id, body.amount, client_key=idempotency_key, bank_reference=body.bank_reference
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return deposit


@router.get("/deposits/{deposit_id}", response_model=DepositOut)
def get_deposit(deposit_id: uuid.UUID, user: WalletOwner, session: SessionDep) -> Deposit:
    deposit = session.get(Deposit, deposit_id)
    if deposit is None or deposit.user_id != user.id:
        raise NotFound(f"no deposit {deposit_id}")
    return deposit


@router.post("/withdrawals", status_code=status.HTTP_201_CREATED, response_model=WithdrawalOut)
def create_withdrawal(
    body: WithdrawalIn, user: WalletOwner, session: SessionDep, response: Response, idempotency_key: IdempotencyGuard
) -> Withdrawal:
    """Reserves the money until an operator pays it out or rejects it. 409 if not enough."""
    withdrawal, created = request_withdrawal(session, user.id, body.amount, client_key=idempotency_key)
    if not created:
        response.status_code = status.HTTP_200_OK
    return withdrawal


@router.get("/withdrawals/{withdrawal_id}", response_model=WithdrawalOut)
def get_withdrawal(withdrawal_id: uuid.UUID, user: WalletOwner, session: SessionDep) -> Withdrawal:
    withdrawal = session.get(Withdrawal, withdrawal_id)
    if withdrawal is None or withdrawal.user_id != user.id:
        raise NotFound(f"no withdrawal {withdrawal_id}")
    return withdrawal


@router.get("/me/deposits", response_model=list[DepositOut], include_in_schema=True)
def my_deposits(
    user: WalletOwner, session: SessionDep, limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50
) -> list[Deposit]:
    return list(
        session.scalars(
            select(Deposit).where(Deposit.user_id == user.id).order_by(Deposit.created_at.desc()).limit(limit)
        )
    )
