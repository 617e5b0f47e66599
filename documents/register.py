"""The register of agreements: one row per document, keyed by what it is about.

A document is identified by (kind, subject_key), both business facts ("investment:<id>").
Asking for it again returns the row already registered: no second render, no duplicate.
A loan's documents are also recorded in the loan's audit chain, in the same transaction.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from compliance.audit import append_audit, lock_loan
from documents.store import DocumentStore
from models.records import Document
from models.users import User

# A sha256 prefix worth looking up: shorter ones match half the register by chance.
_SHA256_PREFIX = re.compile(r"[0-9a-fA-F]{6,64}")


def find_document(session: Session, kind: str, subject_key: str) -> Document | None:
    return session.scalars(select(Document).where(Document.kind == kind, Document.subject_key == subject_key)).first()


def register_document(
    session: Session,
    store: DocumentStore,
    *,
    kind: str,
    subject_key: str,
    loan_id: uuid.UUID | None,
    owner_id: uuid.UUID | None,
    render: Callable[[], bytes],
) -> tuple[Document, bool]:
    """The registered document, rendering and storing it first if it is new. Returns
    (document, created)."""
    existing = find_document(session, kind, subject_key)
    if existing is not None:
        return existing, False
    content = render()
    sha256 = store.put(content)
    if loan_id is not None:
        lock_loan(session, loan_id)  # the lock order (ledger/postings.py): the loan's row first
    inserted = session.execute(
        pg_insert(Document)
        .values(
            kind=kind,
            subject_key=subject_key,
            loan_id=loan_id,
            owner_id=owner_id,
            sha256=sha256,
            size_bytes=len(content),
            content_type="application/pdf",
        )
        .on_conflict_do_nothing(index_elements=["kind", "subject_key"])
        .returning(Document.id)
    ).scalar_one_or_none()
    document = find_document(session, kind, subject_key)
    assert document is not None
    if inserted is None:  # registered concurrently by another attempt
        return document, False
    if loan_id is not None:
        append_audit(
            session,
            loan_id,
            f"document:{kind}:{subject_key}",
            "document.registered",
            note=f"{kind.replace('_', ' ')} registered",
            details={
                "document_id": document.id,
                "kind": kind,
                "subject_key": subject_key,
                "owner_id": owner_id,
                "sha256": sha256,
                "size_bytes": len(content),
            },
        )
    return document, True


@dataclass(frozen=True)
class RegisterSearch:
    documents: list[Document]  # the page asked for, newest first
    total: int  # every document that matches, on all pages


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _matches(term: str) -> ColumnElement[bool]:
    """What a free-text term finds: a document or loan by its id, a file by the start of its
    sha256, a kind, or a piece of a subject key or of the owner's email (any case). The term
    is a bound parameter, its LIKE wildcards escaped: "%" finds a "%", not everything."""
    contains = f"%{_escape_like(term)}%"
    conditions: list[ColumnElement[bool]] = [
        func.lower(Document.kind) == term.lower(),
        Document.subject_key.ilike(contains, escape="\\"),
        User.email.ilike(contains, escape="\\"),
    ]
    try:
        as_id = uuid.UUID(term)
    except ValueError:
        pass
    else:
        conditions += [Document.id == as_id, Document.loan_id == as_id]
    if _SHA256_PREFIX.fullmatch(term):
        conditions.append(Document.sha256.startswith(term.lower()))
    return or_(*conditions)


def search_register(
    session: Session,
    *,
    text: str | None = None,
    kind: str | None = None,
    loan_id: uuid.UUID | None = None,
    limit: int = 50,
    offset: int = 0,
) -> RegisterSearch:
    """The register of documents, newest first, narrowed by a free-text term (see _matches),
    a kind and a loan; with the number of matches, for paging."""
    query = select(Document).outerjoin(User, User.id == Document.owner_id)
    term = (text or "").strip()
    if term:
        query = query.where(_matches(term))
    if kind is not None:
        query = query.where(Document.kind == kind)
    if loan_id is not None:
        query = query.where(Document.loan_id == loan_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = session.scalars(query.order_by(Document.created_at.desc(), Document.id).limit(limit).offset(offset))
    return RegisterSearch(documents=list(page), total=total)
