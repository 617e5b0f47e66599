"""The register of agreements: one row per document, keyed by what it is about.

A document is identified by (kind, subject_key), both business facts ("investment:<id>").
Asking for it again returns the row already registered: no second render, no duplicate.
A loan's documents are also recorded in the loan's audit chain, in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from compliance.audit import append_audit, lock_loan
from documents.store import DocumentStore
from models.records import Document


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
