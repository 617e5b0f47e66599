"""An investment's money checks before it is sent to the loan: the wallet's available money
and the 259-FZ year. Refusing here keeps refused investments from ever reaching the loan's
workflow (where each one would count toward the run's update budget). Not the last word:
the reservation checks both again under the wallet's and the year's locks."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.orm import Session

from core.errors import InsufficientFunds
from investing.annual_limit import annual_limit, limit_exceeded, limit_year
from ledger.accounts import wallet_accounts, wallet_of_user
from models.users import User


def check_investor_can_pay(session: Session, investor: User, amount: Decimal) -> None:
    available, _ = wallet_accounts(session, wallet_of_user(session, investor.id).id)
    if available.balance < amount:
        raise InsufficientFunds(
            f"not enough money on {available.code}: {available.balance:.2f} there, {amount:.2f} needed",
            accounts=[{"account": available.code, "balance": f"{available.balance:.2f}", "needed": f"{amount:.2f}"}],
        )
    year = annual_limit(session, investor, limit_year(None))
    if year.left is not None and amount > year.left:
        raise limit_exceeded(year.year, year.invested)
