"""Assignment (cession) agreements of the secondary market: by a trade, a seller investor
assigns to a buyer investor the claim on part of the outstanding principal of their holding
in a loan, with the matching part of each installment still to come.

The caller (the market) fixes the trade's figures and passes them as TradeFacts: this module
only checks that they add up and puts them on paper. Rendering is deterministic: every time
printed is the trade's (`traded_at`), never the wall clock, so a regenerated agreement has
the same bytes.

Both parties read the agreement, so it names each by role and pseudonym (core/pseudonyms.py,
computed by the caller), never by email or id (compliance/need_to_know.py); the register
links each party's copy to its owner by id. The two copies differ only in whose copy they
say they are: two documents, two files.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from core.settings import Settings
from documents.agreements import platform_context
from documents.register import register_document
from documents.render import render_pdf
from documents.store import DocumentStore
from domain.calendar import day_of
from domain.money import ZERO, format_rate
from models.records import Document

ASSIGNMENT_AGREEMENT = "assignment_agreement"
TEMPLATE = "assignment_agreement.html"
PARTIES = ("seller", "buyer")

_UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.IGNORECASE)


@dataclass(frozen=True)
class TradeFacts:
    """One settled trade, as the market fixed it.

    `principal`: the outstanding principal assigned. `price` = principal x price_percent /
    100, rounded by the market. `accrued_interest`: interest accrued on the assigned principal
    up to settlement, which the buyer pays the seller (the buyer then receives the whole of the
    next installment's interest). `fee`: the platform's, paid by the seller. So
    buyer_pays = price + accrued_interest and seller_gets = buyer_pays - fee.
    `remaining_installments`: the part assigned of each installment still to come, what the
    buyer will receive: dicts {payment_num, due_date (date or ISO string), principal,
    interest}; their principal adds up to `principal`.
    `seller_holding` (optional): the seller's outstanding principal in the loan before the
    trade, to print the share of it assigned.
    """

    trade_id: uuid.UUID
    loan_id: uuid.UUID
    seller_id: uuid.UUID
    buyer_id: uuid.UUID
    principal: Decimal
    price_percent: Decimal
    price: Decimal
    accrued_interest: Decimal
    fee: Decimal
    buyer_pays: Decimal
    seller_gets: Decimal
    traded_at: datetime
    currency: str
    loan_rate_annual: Decimal
    remaining_installments: list[dict[str, Any]]
    seller_holding: Decimal | None = None


def subject_key(trade_id: uuid.UUID, party: str) -> str:
    """The register's key of one party's copy: "trade:<id>:seller" or "trade:<id>:buyer"."""
    if party not in PARTIES:
        raise ValueError(f"an assignment agreement's party is the seller or the buyer, not {party!r}")
    return f"trade:{trade_id}:{party}"


def _check(facts: TradeFacts, seller_name: str, buyer_name: str) -> None:
    """An agreement whose figures do not add up, or that names a party by id or email, is
    refused rather than printed."""
    for name in (seller_name, buyer_name):
        if not name or "@" in name or _UUID.search(name):
            raise ValueError(f"a party is named by pseudonym in an assignment agreement, not {name!r}")
    if facts.traded_at.tzinfo is None:
        raise ValueError("traded_at must be timezone-aware")
    if facts.principal <= 0:
        raise ValueError(f"trade {facts.trade_id}: the principal assigned must be positive")
    if facts.buyer_pays != facts.price + facts.accrued_interest:
        raise ValueError(
            f"trade {facts.trade_id}: buyer pays {facts.buyer_pays}, not price {facts.price}"
            f" + accrued interest {facts.accrued_interest}"
        )
    if facts.seller_gets != facts.buyer_pays - facts.fee:
        raise ValueError(
            f"trade {facts.trade_id}: seller gets {facts.seller_gets}, not {facts.buyer_pays} - fee {facts.fee}"
        )
    if not facts.remaining_installments:
        raise ValueError(f"trade {facts.trade_id}: no installment left to assign")
    assigned = sum((Decimal(row["principal"]) for row in facts.remaining_installments), ZERO)
    if assigned != facts.principal:
        raise ValueError(
            f"trade {facts.trade_id}: the installments assign {assigned} of principal, not {facts.principal}"
        )
    if facts.seller_holding is not None and not 0 < facts.principal <= facts.seller_holding:
        raise ValueError(f"trade {facts.trade_id}: {facts.principal} is more than the holding {facts.seller_holding}")


def _schedule(facts: TradeFacts) -> list[dict[str, Any]]:
    rows = []
    for row in sorted(facts.remaining_installments, key=lambda r: int(r["payment_num"])):
        due = row["due_date"]
        principal, interest = Decimal(row["principal"]), Decimal(row["interest"])
        rows.append(
            {
                "payment_num": int(row["payment_num"]),
                "due_date": due.isoformat() if isinstance(due, date) else str(due),
                "principal": principal,
                "interest": interest,
                "total": principal + interest,
            }
        )
    return rows


def _totals(rows: list[dict[str, Any]]) -> dict[str, Decimal]:
    return {key: sum((r[key] for r in rows), ZERO) for key in ("principal", "interest", "total")}


def assignment_agreement_context(
    facts: TradeFacts, settings: Settings, seller_name: str, buyer_name: str, *, copy_for: str | None = None
) -> dict[str, Any]:
    """The template's context. `seller_name`, `buyer_name`: the parties' pseudonyms.
    `copy_for`: "seller" or "buyer" prints whose copy it is (None: no such line)."""
    _check(facts, seller_name, buyer_name)
    if copy_for is not None:
        subject_key(facts.trade_id, copy_for)  # validates it
    share = None
    if facts.seller_holding is not None:
        share = f"{(facts.principal / facts.seller_holding * 100).quantize(Decimal('0.0001')).normalize():f}"
    schedule = _schedule(facts)
    traded_at = facts.traded_at.astimezone(UTC)
    return {
        "agreement_number": f"A-{str(facts.trade_id)[:8].upper()}",
        "copy_for": copy_for,
        "platform": platform_context(settings),
        "generated_at": traded_at.strftime("%Y-%m-%d %H:%M:%S"),
        "trade": {
            "id": facts.trade_id,
            "settled_at": traded_at.strftime("%Y-%m-%d %H:%M:%S"),
            # the platform's day, as the loans' due dates
            "date": day_of(facts.traded_at, settings.PLATFORM_TIME_ZONE).isoformat(),
            "principal": facts.principal,
            "seller_holding": facts.seller_holding,
            "share_percent": share,
            "price_percent": format_rate(facts.price_percent),
            "price": facts.price,
            "accrued_interest": facts.accrued_interest,
            "fee": facts.fee,
            "buyer_pays": facts.buyer_pays,
            "seller_gets": facts.seller_gets,
        },
        "loan": {
            "id": facts.loan_id,
            "rate_annual": format_rate(facts.loan_rate_annual),
            "currency": facts.currency,
        },
        "seller": {"pseudonym": seller_name},
        "buyer": {"pseudonym": buyer_name},
        "schedule": schedule,
        "totals": _totals(schedule),
    }


def render_assignment_agreement(
    facts: TradeFacts, settings: Settings, seller_name: str, buyer_name: str, *, copy_for: str | None = None
) -> bytes:
    return render_pdf(
        TEMPLATE, assignment_agreement_context(facts, settings, seller_name, buyer_name, copy_for=copy_for)
    )


def register_assignment_agreements(
    session: Session, store: DocumentStore, facts: TradeFacts, settings: Settings, seller_name: str, buyer_name: str
) -> list[Document]:
    """The trade's two agreements, [seller's copy, buyer's copy], each rendered and registered
    once (kind "assignment_agreement", subject "trade:<id>:seller" / ":buyer", owned by that
    party, linked to the loan and recorded in its audit chain). Asking again returns the same
    documents and renders nothing. In the caller's transaction: it locks the loan's row
    (the lock order of ledger/postings.py) when it registers a new one."""
    _check(facts, seller_name, buyer_name)
    owners = {"seller": facts.seller_id, "buyer": facts.buyer_id}
    documents = []
    for party in PARTIES:
        document, _ = register_document(
            session,
            store,
            kind=ASSIGNMENT_AGREEMENT,
            subject_key=subject_key(facts.trade_id, party),
            loan_id=facts.loan_id,
            owner_id=owners[party],
            render=lambda party=party: render_assignment_agreement(
                facts, settings, seller_name, buyer_name, copy_for=party
            ),
        )
        documents.append(document)
    return documents
