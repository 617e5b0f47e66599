"""Loan agreements: one per investment (the investor's share of the schedule) and one for
the borrower (the full schedule), generated once the loan is disbursed and its schedule
fixed, while it repays (so possibly after collections, an early repayment or a default: hence
the investments' statuses below). Their context is facts fixed at the payout; "generated at"
is the disbursement time: regenerating an agreement gives the same bytes, with the same
templates, renderer and settings (README "How a loan lives").

An investment agreement is read by both its parties, so it names each by role and pseudonym
(core/pseudonyms.py), not by email or id: the borrower has no need to know who the investor
is, nor the investor the borrower (compliance/need_to_know.py). The register links the
agreement to both (its loan's borrower, its owner).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import Conflict, NotFound
from core.pseudonyms import pseudonym
from core.settings import Settings
from documents.register import register_document
from documents.render import render_pdf
from documents.store import DocumentStore
from domain.calendar import day_of
from domain.money import ZERO, format_rate
from ledger.postings import find_posted
from loans.investor_shares import agreed_shares_of
from models.loans import Investment, LoanRequest, RepaymentInstallment
from models.plans import Seller
from models.products import LoanProduct
from models.records import Document
from models.users import User
from products.service import terms_of

INVESTMENT_AGREEMENT = "investment_agreement"
BORROWER_AGREEMENT = "borrower_agreement"
AGREEMENT_INVESTMENT_STATUSES = ("active", "repaid", "defaulted")


def platform_context(settings: Settings) -> dict[str, str]:
    return {"name": settings.PLATFORM_NAME, "details": settings.PLATFORM_DETAILS}


@dataclass(frozen=True)
class _LoanFacts:
    loan: LoanRequest
    borrower: User
    product: LoanProduct
    installments: list[RepaymentInstallment]
    investments: list[Investment]
    # An award credit's seller (README "Financing modalities"); None for a loan to the wallet.
    seller: Seller | None = None


def _loan_facts(session: Session, loan_id: uuid.UUID) -> _LoanFacts:
    loan = session.get(LoanRequest, loan_id)
    if loan is None:
        raise NotFound(f"no loan {loan_id}")
    if loan.disbursed_at is None:
        raise Conflict(f"loan {loan_id} is {loan.status}: agreements follow the disbursement")
    installments = list(
        session.scalars(
            select(RepaymentInstallment)
            .where(RepaymentInstallment.loan_id == loan_id)
            .order_by(RepaymentInstallment.payment_num)
        )
    )
    investments = list(
        session.scalars(
            select(Investment)
            .where(Investment.loan_id == loan_id, Investment.status.in_(AGREEMENT_INVESTMENT_STATUSES))
            .order_by(Investment.created_at, Investment.id)
        )
    )
    return _LoanFacts(
        loan,
        session.get_one(User, loan.borrower_id),
        session.get_one(LoanProduct, loan.product_id),
        installments,
        investments,
        session.get(Seller, loan.seller_id) if loan.seller_id else None,
    )


def _loan_context(facts: _LoanFacts, settings: Settings) -> dict[str, Any]:
    loan = facts.loan
    assert loan.disbursed_at is not None
    return {
        "id": loan.id,
        "amount": loan.amount,
        "currency": loan.currency,
        "rate_annual": format_rate(loan.rate_annual) if loan.rate_annual is not None else None,
        "term_months": loan.term_months,
        "risk_grade": loan.risk_grade,
        # the platform's day, as the schedule's (its due dates count from it)
        "disbursed_on": day_of(loan.disbursed_at, settings.PLATFORM_TIME_ZONE).isoformat(),
        "asset": _asset_context(facts),
    }


def _asset_context(facts: _LoanFacts) -> dict[str, Any] | None:
    """An award credit's asset and seller: what the loan bought, and who was paid for it."""
    loan = facts.loan
    if loan.seller_id is None:
        return None
    return {
        "kind": loan.asset_kind,
        "description": loan.asset_description,
        "price": loan.asset_price,
        "down_payment": loan.down_payment,
        "seller": facts.seller.legal_name if facts.seller else "",
        "seller_id": loan.seller_id,
        "plan_id": loan.plan_id,
    }


def _generated_at(loan: LoanRequest) -> str:
    assert loan.disbursed_at is not None
    return loan.disbursed_at.strftime("%Y-%m-%d %H:%M:%S")


def investment_shares(session: Session, facts: _LoanFacts) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """Each investment's part of each installment, as decided when the loan was paid out
    (domain/investor_shares.py, stored by loans/investor_shares.py): the same figures every
    collection pays it, so an investor's receipts equal their agreement to the kopek."""
    due_dates = {row.payment_num: row.due_date for row in facts.installments}
    agreed = agreed_shares_of(session, facts.loan.id)
    return {
        investment.id: [
            {
                "payment_num": share.payment_num,
                "due_date": due_dates[share.payment_num].isoformat(),
                "principal": share.principal,
                "interest": share.interest,
                "total": share.total,
            }
            for share in agreed.get(investment.id, [])
        ]
        for investment in facts.investments
    }


def _totals(rows: list[dict[str, Any]]) -> dict[str, Decimal]:
    return {key: sum((r[key] for r in rows), ZERO) for key in ("principal", "interest", "total")}


def investment_agreement_context(
    facts: _LoanFacts, investment: Investment, investor: User, schedule: list[dict[str, Any]], settings: Settings
) -> dict[str, Any]:
    share = (investment.amount / facts.loan.amount * 100).quantize(Decimal("0.0001"))
    return {
        "agreement_number": f"{str(facts.loan.id)[:8].upper()}-{str(investment.id)[:8].upper()}",
        "platform": platform_context(settings),
        "generated_at": _generated_at(facts.loan),
        "loan": _loan_context(facts, settings),
        "terms": terms_of(facts.product).model_dump(),
        "investor": {"pseudonym": pseudonym(investor.role, investor.id, settings)},
        "borrower": {"pseudonym": pseudonym(facts.borrower.role, facts.borrower.id, settings)},
        "investment": {"id": investment.id, "amount": investment.amount},
        "share_percent": f"{share.normalize():f}",
        "schedule": schedule,
        "totals": _totals(schedule),
    }


def borrower_agreement_context(session: Session, facts: _LoanFacts, settings: Settings) -> dict[str, Any]:
    loan = facts.loan
    disbursement = find_posted(session, f"loan:{loan.id}:disburse")
    if disbursement is None:
        raise Conflict(f"loan {loan.id} has no disbursement in the ledger")
    balance = loan.amount
    schedule = []
    for row in facts.installments:
        balance -= row.principal
        schedule.append(
            {
                "payment_num": row.payment_num,
                "due_date": row.due_date.isoformat(),
                "principal": row.principal,
                "interest": row.interest,
                "total": row.principal + row.interest,
                "balance_after": balance,
            }
        )
    return {
        "agreement_number": str(loan.id)[:8].upper(),
        "platform": platform_context(settings),
        "generated_at": _generated_at(loan),
        "loan": _loan_context(facts, settings),
        "terms": terms_of(facts.product).model_dump(),
        "borrower": {"id": facts.borrower.id, "email": facts.borrower.email},
        "investors_count": len({i.investor_id for i in facts.investments}),
        "investments_count": len(facts.investments),
        "disbursement": {
            key: Decimal(disbursement.details[key]) for key in ("to_borrower", "platform_fee", "reserve_contribution")
        },
        "schedule": schedule,
        "totals": _totals(schedule),
    }


@dataclass(frozen=True)
class AgreementPlan:
    """What the loan's agreements are about (the loan, the borrower's; each investment) and
    each investment's share of the schedule, read once for all of them (once per agreement
    it would be quadratic in the investors)."""

    subjects: list[str]
    shares: dict[uuid.UUID, list[dict[str, Any]]]


def plan_agreements(session: Session, loan_id: uuid.UUID) -> AgreementPlan:
    facts = _loan_facts(session, loan_id)
    return AgreementPlan(
        [f"loan:{loan_id}"] + [f"investment:{i.id}" for i in facts.investments], investment_shares(session, facts)
    )


def register_agreement(
    session: Session,
    store: DocumentStore,
    settings: Settings,
    loan_id: uuid.UUID,
    subject_key: str,
    shares: dict[uuid.UUID, list[dict[str, Any]]] | None = None,
) -> Document:
    """One agreement of the loan, rendered and registered once. `shares`: from
    plan_agreements (computed here when not given)."""
    facts = _loan_facts(session, loan_id)
    loan = facts.loan
    if subject_key == f"loan:{loan_id}":
        document, _ = register_document(
            session,
            store,
            kind=BORROWER_AGREEMENT,
            subject_key=subject_key,
            loan_id=loan.id,
            owner_id=loan.borrower_id,
            render=lambda: render_pdf("borrower_agreement.html", borrower_agreement_context(session, facts, settings)),
        )
        return document
    investment = next((i for i in facts.investments if f"investment:{i.id}" == subject_key), None)
    if investment is None:
        raise NotFound(f"loan {loan_id} has no agreement subject {subject_key}")

    def render() -> bytes:
        investor = session.get_one(User, investment.investor_id)
        schedule = (shares if shares is not None else investment_shares(session, facts))[investment.id]
        return render_pdf(
            "investment_agreement.html", investment_agreement_context(facts, investment, investor, schedule, settings)
        )

    document, _ = register_document(
        session,
        store,
        kind=INVESTMENT_AGREEMENT,
        subject_key=subject_key,
        loan_id=loan.id,
        owner_id=investment.investor_id,
        render=render,
    )
    return document
