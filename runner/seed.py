"""What `make run` puts in an empty database: platform accounts, the catalog's products
(`standard` and the financing modalities'), the default scoring rules (version 1), and the
operator from OPERATOR_EMAIL / OPERATOR_PASSWORD. Safe to run again."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.security import hash_password
from core.settings import Settings
from ledger.accounts import ensure_platform_accounts
from models.users import User
from products.catalog import CATALOG
from products.service import ensure_product
from scoring.rules import ensure_default_rules


def seed(session: Session, settings: Settings) -> list[str]:
    done: list[str] = []
    ensure_platform_accounts(session, "RUB")
    for terms in CATALOG:
        product = ensure_product(session, terms)
        done.append(f"product {product.code} v{product.version}")
    ensure_default_rules(session)
    if settings.OPERATOR_EMAIL and settings.OPERATOR_PASSWORD:
        email = settings.OPERATOR_EMAIL.strip().lower()
        user = session.scalars(select(User).where(User.email == email)).first()
        if user is None:
            session.add(
                User(
                    email=email,
                    role="operator",
                    password_hash=hash_password(settings.OPERATOR_PASSWORD.get_secret_value()),
                )
            )
            done.append(f"operator {email} created")
        elif user.role != "operator":
            raise RuntimeError(f"OPERATOR_EMAIL {email} belongs to a {user.role}, not an operator")
        else:
            done.append(f"operator {email} exists")
    return done
