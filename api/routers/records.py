"""The register of documents and the compliance trail: read-only for everyone.

Documents: a loan's borrower, operators and compliance read all of a loan's documents; an
investor reads the ones they own (their agreements, their statements). The trail: the
loan's borrower, operators and compliance. Others get 404 (ids are not confirmed to exist).
Both name people by need to know (compliance/need_to_know.py): a borrower sees an investor's
or an operator's role and pseudonym, never their email or id."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import CurrentUser, OperatorOrCompliance, SessionDep, SettingsDep, TemporalDep, in_db
from api.routers.loans import readable_loan
from api.schemas.records import (
    ChainCheckOut,
    DocumentCheckOut,
    DocumentOut,
    RegisterPage,
    TrailOut,
    TrailStepOut,
    TrailVerificationOut,
)
from compliance.need_to_know import People, Reader
from compliance.trail import Trail, check_documents, join_history, read_trail
from core.errors import Conflict, Forbidden, NotFound
from core.settings import Settings
from documents.assignments import ASSIGNMENT_AGREEMENT
from documents.register import search_register
from documents.store import DocumentStore
from models.loans import LoanRequest
from models.records import Document
from models.users import Role, User

router = APIRouter(prefix="/v1", tags=["documents and trail"])

OVERSIGHT = (Role.operator.value, Role.compliance.value)
# Documents between investors only: their parties, operators and compliance read them.
INVESTORS_ONLY = (ASSIGNMENT_AGREEMENT,)


def _document_out(document: Document, people: People) -> DocumentOut:
    return DocumentOut(
        id=document.id,
        kind=document.kind,
        subject_key=people.redact(document.subject_key),
        loan_id=document.loan_id,
        owner_id=people.id(document.owner_id),
        owner_pseudonym=people.name(document.owner_id),
        owner_email=people.email(document.owner_id),
        sha256=document.sha256,
        size_bytes=document.size_bytes,
        content_type=document.content_type,
        created_at=document.created_at,
        url=f"/v1/documents/{document.id}",
    )


def _may_read_document(session: Session, document: Document, user: User) -> bool:
    if user.role in OVERSIGHT or document.owner_id == user.id:
        return True
    if document.loan_id is not None and document.kind not in INVESTORS_ONLY:
        # The borrower is a party to every agreement of their loan (not to the investors'
        # assignments of their claims between themselves).
        loan = session.get(LoanRequest, document.loan_id)
        return loan is not None and loan.borrower_id == user.id
    return False


def _documents_out(session: Session, documents: list[Document], user: User, settings: Settings) -> list[DocumentOut]:
    people = People(session, Reader.of(user, settings), [(d.owner_id, d.subject_key) for d in documents])
    return [_document_out(d, people) for d in documents]


@router.get("/loans/{loan_id}/documents", response_model=list[DocumentOut])
def loan_documents(
    loan_id: uuid.UUID, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> list[DocumentOut]:
    loan, _ = readable_loan(session, loan_id, user)
    query = select(Document).where(Document.loan_id == loan.id)
    if user.role not in OVERSIGHT and loan.borrower_id != user.id:
        query = query.where(Document.owner_id == user.id)
    elif user.role not in OVERSIGHT:  # the borrower: not the investors' assignments between themselves
        query = query.where((Document.kind.not_in(INVESTORS_ONLY)) | (Document.owner_id == user.id))
    documents = list(session.scalars(query.order_by(Document.created_at, Document.id)))
    return _documents_out(session, documents, user, settings)


@router.get("/users/me/documents", response_model=list[DocumentOut])
def my_documents(user: CurrentUser, session: SessionDep, settings: SettingsDep) -> list[DocumentOut]:
    """Documents this user owns: agreements and monthly statements."""
    rows = session.scalars(
        select(Document)
        .where(Document.owner_id == user.id)
        .order_by(Document.created_at.desc(), Document.id)
        .limit(500)
    )
    return _documents_out(session, list(rows), user, settings)


@router.get("/register", response_model=RegisterPage, tags=["operator"])
def register(
    user: OperatorOrCompliance,
    session: SessionDep,
    settings: SettingsDep,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            description="a document or loan id, the start of a sha256 (6+ hex digits), a kind, "
            "or part of a subject key or of the owner's email (any case)",
        ),
    ] = None,
    kind: Annotated[str | None, Query(max_length=40)] = None,
    loan_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> RegisterPage:
    """The register of documents, newest first, searchable: for operators and compliance, who
    see every owner (need to know still decides what each item shows)."""
    found = search_register(session, text=q, kind=kind, loan_id=loan_id, limit=limit, offset=offset)
    return RegisterPage(items=_documents_out(session, found.documents, user, settings), total=found.total)


@router.get(
    "/documents/{document_id}",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "the PDF"}},
)
def get_document(document_id: uuid.UUID, user: CurrentUser, session: SessionDep, settings: SettingsDep) -> Response:
    document = session.get(Document, document_id)
    if document is None or not _may_read_document(session, document, user):
        raise NotFound(f"no document {document_id}")
    content = DocumentStore(settings.documents_dir).read(document.sha256)
    if hashlib.sha256(content).hexdigest() != document.sha256:
        raise Conflict("the stored file no longer matches the register; it is not served")
    return Response(
        content,
        media_type=document.content_type,
        headers={
            "Content-Disposition": f'attachment; filename="{document.kind}-{document.id}.pdf"',
            "ETag": f'"{document.sha256}"',
            "Cache-Control": "private, max-age=3600",
        },
    )


def _trail_loan(session: Session, loan_id: uuid.UUID, user: User) -> LoanRequest:
    loan, full = readable_loan(session, loan_id, user)
    if not full:
        raise Forbidden("a loan's trail is for its borrower, operators and compliance")
    return loan


async def _trail(request: Request, loan_id: uuid.UUID, user: User, temporal: TemporalDep) -> Trail:
    reader = Reader.of(user, request.app.state.settings)
    trail = await in_db(request, lambda s: read_trail(s, _trail_loan(s, loan_id, user), reader))
    try:
        client = await temporal.get()
    except Exception:  # the audit log alone is the trail; history ids are a join
        return trail
    return await join_history(trail, client)


def _chain_out(trail: Trail) -> ChainCheckOut:
    return ChainCheckOut(**asdict(trail.check))


@router.get("/loans/{loan_id}/trail", response_model=TrailOut)
async def loan_trail(loan_id: uuid.UUID, user: CurrentUser, request: Request, temporal: TemporalDep) -> TrailOut:
    """Every recorded step of the loan in order (state changes, ledger transactions,
    investments, documents, operator decisions: who, when, what), each with the workflow
    history events of the activity that made it, and the hash chain's check."""
    trail = await _trail(request, loan_id, user, temporal)
    return TrailOut(
        loan_id=trail.loan.id,
        workflow_id=trail.loan.workflow_id,
        status=trail.loan.status,
        history_available=trail.history_available,
        workflow_runs=trail.runs,
        chain=_chain_out(trail),
        steps=[TrailStepOut(**asdict(step)) for step in trail.steps],
    )


@router.get(
    "/loans/{loan_id}/trail.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "the trail as a PDF"}},
)
async def loan_trail_pdf(loan_id: uuid.UUID, user: CurrentUser, request: Request, temporal: TemporalDep) -> Response:
    """The same trail, for a regulator."""
    settings = request.app.state.settings
    trail = await _trail(request, loan_id, user, temporal)
    loan = trail.loan
    context = {
        "platform": {"name": settings.PLATFORM_NAME, "details": settings.PLATFORM_DETAILS},
        "generated_at": trail.steps[-1].at if trail.steps else "-",
        "loan": {
            "id": loan.id,
            "status": loan.status,
            "amount": loan.amount,
            "currency": loan.currency,
            "term_months": loan.term_months,
            "workflow_id": loan.workflow_id,
        },
        "steps": [asdict(step) for step in trail.steps],
        "check": trail.check,
    }
    content = await request.app.state.render_pool.render("loan_trail.html", context)
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="trail-{loan.id}.pdf"'},
    )


@router.get("/loans/{loan_id}/trail/verify", response_model=TrailVerificationOut)
def verify_trail(
    loan_id: uuid.UUID, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> TrailVerificationOut:
    """Recomputes the loan's hash chain and checks each registered document's bytes:
    intact, or the first record that does not match."""
    loan = _trail_loan(session, loan_id, user)
    trail = read_trail(session, loan, Reader.of(user, settings))
    documents = check_documents(session, DocumentStore(settings.documents_dir), loan.id)
    return TrailVerificationOut(
        loan_id=loan.id,
        intact=trail.check.intact and all(d.intact for d in documents),
        chain=_chain_out(trail),
        documents=[DocumentCheckOut(**asdict(d)) for d in documents],
    )
