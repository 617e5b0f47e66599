"""Forms: what was typed, what was wrong with it (beside its field), and the
Idempotency-Key a money form carries.

A money form is rendered with a fresh key in a hidden field; posting it twice (a double
click, a reload after a lost answer) sends the same key, so the API does it once and
replays its first answer. After a refusal the form comes back with a new key; after an
unknown outcome (503, or the first post still in progress) with the same one, so sending it
again learns the real outcome instead of doing it twice."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse

from web.platform_api import ApiProblem
from web.session import CSRF_FIELD

KEY_FIELD = "idempotency_key"
_KEY_PATTERN = re.compile(r"^[A-Za-z0-9-]{8,100}$")


def new_key() -> str:
    return str(uuid.uuid4())


@dataclass
class FormState:
    """One form on a page: its values, its errors by field, a message for the whole form."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    message: str | None = None
    key: str = field(default_factory=new_key)

    def value(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)

    def error(self, name: str) -> str | None:
        return self.errors.get(name)


async def read_form(request: Request) -> dict[str, str]:
    """The posted text fields, trimmed (files and the CSRF token left out)."""
    form = await request.form()
    return {k: v.strip() for k, v in form.items() if isinstance(v, str) and k != CSRF_FIELD}


def amount_text(raw: str) -> str:
    """What people type for money ("100 000", "1500,50") as the API's decimal string."""
    text = raw.replace("\u202f", "").replace("\xa0", "").replace(" ", "").replace("_", "")
    if "," in text and "." not in text:
        text = text.replace(",", ".")
    return text


def whole_number(raw: str) -> int | str | None:
    """A typed count ("12") as the number the API expects; anything else as typed (the API
    then says what is wrong with it), nothing as nothing."""
    raw = raw.strip()
    if not raw:
        return None
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else raw


def posted_key(values: dict[str, str]) -> str:
    """The form's Idempotency-Key; a missing or odd one gets a new key (never none)."""
    key = values.get(KEY_FIELD, "")
    return key if _KEY_PATTERN.match(key) else new_key()


def refused(
    problem: ApiProblem,
    values: dict[str, str],
    key: str,
    fields: tuple[str, ...],
    aliases: dict[str, str] | None = None,
) -> FormState:
    """The form again after the API said no: each error beside its field when the API named
    one of the form's `fields` (by its path in the body: "allowed_grades.0" is the field
    "allowed_grades"; `aliases` name the form field of a path that differs), the rest (or the
    refusal's detail) above the form."""
    errors: dict[str, str] = {}
    unplaced: list[str] = []
    for path, message in problem.field_errors.items():
        name = (aliases or {}).get(path, path)
        if name not in fields:
            name = name.split(".")[0]
        if name in fields:
            errors.setdefault(name, message)
        else:
            unplaced.append(message if path == "body" else f"{path}: {message}")
    message = "; ".join(unplaced) if unplaced else (None if errors else problem.detail)
    if problem.outcome_unknown:
        message = f"{problem.detail} Nothing will be done twice: send the form again as it is to learn what happened."
    elif problem.status == 429:
        message = f"{problem.detail} (wait {problem.retry_after or 'a minute'} seconds)"
    return FormState(values=values, errors=errors, message=message, key=key if problem.outcome_unknown else new_key())


def unshown(forms: dict[str, FormState], shown: set[str]) -> str | None:
    """The refusal of a form whose item is no longer on the page (a loan filled up, a deposit
    another operator decided): said at the top of the page, with what was typed."""
    for name, state in forms.items():
        if name not in shown and (state.message or state.errors):
            typed = ", ".join(f"{k} {v}" for k, v in state.values.items() if v and k not in ("idempotency_key",))
            said = state.message or "; ".join(state.errors.values())
            return f"Not done: {said}" + (f" (you sent: {typed})" if typed else "")
    return None


def see_other(path: str, notice: str | None = None) -> RedirectResponse:
    """POST, then redirect (303): a reload never posts again."""
    target = f"{path}{'&' if '?' in path else '?'}notice={quote(notice)}" if notice else path
    return RedirectResponse(target, status_code=303)
