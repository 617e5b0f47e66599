"""What changed between two versions of a product's terms: the operators' diff."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from models.product_terms import ProductTerms

# Not terms: every version has its own.
_NOT_TERMS = {"id", "version", "is_current", "created_at"}


@dataclass(frozen=True)
class TermChange:
    term: str
    before: str
    after: str


def _same(a: Any, b: Any) -> bool:
    """Equal as terms: "10.0000" and "10" are the same rate."""
    if a == b:
        return True
    try:
        return a is not None and b is not None and Decimal(str(a)) == Decimal(str(b))
    except (InvalidOperation, ValueError):
        return False


def _shown(value: Any) -> str:
    return "—" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def diff_terms(before: dict[str, Any], after: dict[str, Any]) -> list[TermChange]:
    """Each term whose value differs, in the order ProductTerms declares them; a rate by
    grade is one term per grade ("rates_by_grade.B")."""
    changes = []
    for name in ProductTerms.model_fields:
        if name in _NOT_TERMS:
            continue
        old, new = before.get(name), after.get(name)
        if isinstance(old, dict) or isinstance(new, dict):
            old, new = old or {}, new or {}
            for key in sorted(set(old) | set(new)):
                if not _same(old.get(key), new.get(key)):
                    changes.append(TermChange(f"{name}.{key}", _shown(old.get(key)), _shown(new.get(key))))
        elif not _same(old, new):
            changes.append(TermChange(name, _shown(old), _shown(new)))
    return changes
