"""The versions of the scoring rules: the current one scores new loans; operators add a
version to change them (the old ones stay, for the loans scored with them)."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from core.errors import NotFound
from domain.scoring import DEFAULT_RULES
from models.scoring import ScoringRulesVersion
from models.scoring_rules import ScoringRules


def ensure_default_rules(session: Session) -> None:
    """Version 1 is the default rules, if there is no version yet (seed; idempotent)."""
    session.execute(
        pg_insert(ScoringRulesVersion)
        .values(version=1, rules=DEFAULT_RULES.model_dump(mode="json"), note="the default rules")
        .on_conflict_do_nothing(index_elements=["version"])
    )


def current_rules(session: Session) -> tuple[int, ScoringRules]:
    row = session.scalars(select(ScoringRulesVersion).order_by(ScoringRulesVersion.version.desc()).limit(1)).first()
    if row is None:
        ensure_default_rules(session)
        return 1, DEFAULT_RULES
    return row.version, ScoringRules.model_validate(row.rules)


def rules_version(session: Session, version: int) -> ScoringRulesVersion:
    row = session.get(ScoringRulesVersion, version)
    if row is None:
        raise NotFound(f"no scoring rules version {version}")
    return row


def all_versions(session: Session) -> list[ScoringRulesVersion]:
    return list(session.scalars(select(ScoringRulesVersion).order_by(ScoringRulesVersion.version)))


def change_rules(
    session: Session, rules: ScoringRules, created_by: uuid.UUID | None, note: str | None
) -> ScoringRulesVersion:
    """A new version; loans already scored keep theirs. Two operators changing the rules at
    once get consecutive versions (a transaction lock orders them: an advisory one, as the app's
    database role may not lock the table itself)."""
    ensure_default_rules(session)
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('scoring_rules: new version'))"))
    version = session.scalar(select(func.max(ScoringRulesVersion.version))) + 1
    row = ScoringRulesVersion(version=version, rules=rules.model_dump(mode="json"), note=note, created_by=created_by)
    session.add(row)
    session.flush()
    return row
