"""Scoring: the rules (operators edit them, compliance reads them), a loan's explanation,
and a borrower's on-time payment points."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import BorrowerUser, CurrentUser, OperatorOrCompliance, OperatorUser, SessionDep, SettingsDep
from api.routers.loans import _loan_out, readable_loan
from api.schemas.scoring import (
    LoanScoringOut,
    PointsEntryOut,
    PointsOut,
    ReviewOut,
    RulesChangeIn,
    RulesVersionOut,
    ScoringFactorOut,
)
from compliance.need_to_know import People, Reader
from core.errors import Forbidden
from core.settings import Settings
from domain.money import format_rate
from models.loan_status import LoanStatus
from models.loans import LoanRequest
from models.scoring import ScoringRulesVersion
from models.users import User
from products.service import product_labels
from scoring.points import payment_history, points_entries
from scoring.rules import all_versions, change_rules, current_rules, rules_version

router = APIRouter(prefix="/v1", tags=["scoring"])

# What workflows/loan.py writes in a loan's scoring details while it waits for an operator.
AWAITING_REVIEW = "operator review"


@router.get("/operator/scoring-rules", response_model=RulesVersionOut, tags=["operator"])
def get_current_rules(user: OperatorOrCompliance, session: SessionDep) -> ScoringRulesVersion:
    """The rules new loans are scored with."""
    version, _ = current_rules(session)
    return rules_version(session, version)


@router.get("/operator/scoring-rules/versions", response_model=list[RulesVersionOut], tags=["operator"])
def list_rule_versions(user: OperatorOrCompliance, session: SessionDep) -> list[ScoringRulesVersion]:
    return all_versions(session)


@router.get("/operator/scoring-rules/versions/{version}", response_model=RulesVersionOut, tags=["operator"])
def get_rule_version(
    version: Annotated[int, Path(ge=1, le=2**31 - 1)], user: OperatorOrCompliance, session: SessionDep
) -> ScoringRulesVersion:
    return rules_version(session, version)


@router.put(
    "/operator/scoring-rules", response_model=RulesVersionOut, status_code=status.HTTP_201_CREATED, tags=["operator"]
)
def put_rules(body: RulesChangeIn, operator: OperatorUser, session: SessionDep) -> ScoringRulesVersion:
    """Writes a new version of the rules (201): loans scored from now on use it; loans
    already scored keep the version and the score they got."""
    return change_rules(session, body.rules, operator.id, body.note)


def scoring_out(session: Session, loan: LoanRequest, user: User, settings: Settings) -> LoanScoringOut:
    """A loan's scoring as this reader may see it: people named by need to know (the borrower
    reads who decided by role and pseudonym, staff by id). Callers check the reader may read it."""
    stored = loan.scoring_details or {}
    details = People(session, Reader.of(user, settings), stored).redact(stored)
    return LoanScoringOut(
        loan_id=loan.id,
        status=loan.status,
        score=loan.scoring_score,
        grade=loan.risk_grade,
        rate_annual=format_rate(loan.rate_annual) if loan.rate_annual is not None else None,
        decision=details.get("decision"),
        rules_version=loan.scoring_rules_version,
        reasons=[ScoringFactorOut(**r) for r in details.get("reasons", [])],
        rejection_reason=loan.rejection_reason,
        operator_decision=details.get("operator_decision"),
    )


@router.get("/loans/{loan_id}/scoring", response_model=LoanScoringOut)
def loan_scoring(loan_id: uuid.UUID, user: CurrentUser, session: SessionDep, settings: SettingsDep) -> LoanScoringOut:
    """Why the loan got its score, grade and decision: each factor's points in words, and the
    rules version used. For the borrower, operators and compliance; the borrower is told who
    decided by role and pseudonym ("operator-5c0e19a4"), not by id."""
    loan, full = readable_loan(session, loan_id, user)
    if not full:
        raise Forbidden("a loan's scoring is for its borrower, operators and compliance")
    return scoring_out(session, loan, user, settings)


@router.get("/operator/reviews", response_model=list[ReviewOut], tags=["operator"])
def awaiting_review(
    user: OperatorOrCompliance,
    session: SessionDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> list[ReviewOut]:
    """Loans waiting for an operator's decision (POST /v1/operator/loans/{id}/decision), oldest
    first, each with the scoring that sent it to review. The workflow marks them so on the
    read side when it starts to wait (workflows/loan.py, `_await_review`); a decision or the
    review's timeout moves them on."""
    loans = session.scalars(
        select(LoanRequest)
        .where(
            LoanRequest.status == LoanStatus.scoring,
            LoanRequest.scoring_details["awaiting"].astext == AWAITING_REVIEW,
        )
        .order_by(LoanRequest.created_at, LoanRequest.id)
        .limit(limit)
        .offset(offset)
    )
    return [
        ReviewOut(
            loan=_loan_out(loan, True, product_labels(session, {loan.product_id})),
            scoring=scoring_out(session, loan, user, settings),
        )
        for loan in loans
    ]


@router.get("/users/me/points", response_model=PointsOut, tags=["users"])
def my_points(
    user: BorrowerUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> PointsOut:
    """On-time payment points: the balance that counts in the next score, and each event
    that earned or cost points, newest first."""
    history = payment_history(session, user.id)
    return PointsOut(
        **asdict(history),
        history=[PointsEntryOut.model_validate(entry) for entry in points_entries(session, user.id, limit, offset)],
    )
