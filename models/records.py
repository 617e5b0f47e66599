"""The register of documents and the audit log: records compliance relies on."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Identity, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at_column, uuid_pk


class Document(Base):
    """A generated PDF, stored content-addressed: the register of agreements."""

    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("kind", "subject_key"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    # What the document is about, as business facts (e.g. "investment:<id>"): regenerating
    # the same document finds this row instead of adding a duplicate.
    subject_key: Mapped[str] = mapped_column(String(200), nullable=False)
    loan_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("loan_requests.id"), index=True)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size_bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    content_type: Mapped[str] = mapped_column(String(100), nullable=False, server_default="application/pdf")
    created_at: Mapped[datetime] = created_at_column()


class AuditRecord(Base):
    """Append-only (the database refuses UPDATE and DELETE); each record of a loan carries
    the hash of the previous one, so a changed or removed record breaks the chain."""

    __tablename__ = "audit_log"
    __table_args__ = (
        # A retried activity finds its record instead of writing it twice.
        UniqueConstraint("loan_id", "event_key"),
        # One successor per record: the chain cannot fork, even under a race.
        UniqueConstraint("loan_id", "prev_hash", postgresql_nulls_not_distinct=True),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    loan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("loan_requests.id"), index=True, nullable=False)
    # What happened, as business facts ("status:funding:<at>", "ledger:<key>", ...).
    event_key: Mapped[str] = mapped_column(String(240), nullable=False)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    actor_role: Mapped[str] = mapped_column(String(20), nullable=False)
    action: Mapped[str] = mapped_column(String(80), nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    record_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
