"""Personal data by need to know: what one reader of the platform's records learns of the
other people in them.

Operators and compliance see everyone's email, user id and wallet: their work needs them.
Anyone else sees their own, and of any other person only a role and a pseudonym
(core/pseudonyms.py): a borrower learns no investor's or operator's email or id, an investor
no borrower's. Every answer that names people goes through here: a loan's trail (JSON and
PDF), its scoring, the register of documents.

Ids are found by their shape wherever they are (a field, a nested dict, the ledger account
"wallet:<id>:reserved", a note), so a new field that names a person is covered without
anyone remembering to add it here.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Session

from core.pseudonyms import pseudonym
from core.settings import Settings
from models.ledger import Wallet
from models.users import Role, User

OVERSIGHT = frozenset({Role.operator.value, Role.compliance.value})
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


@dataclass(frozen=True)
class Reader:
    """Who reads, and the deployment whose pseudonyms they are shown."""

    id: uuid.UUID
    role: str
    settings: Settings

    @classmethod
    def of(cls, user: User, settings: Settings) -> Reader:
        return cls(user.id, user.role, settings)

    def sees(self, person: uuid.UUID) -> bool:
        """Whether this reader may know who `person` is (their email, id and wallet)."""
        return self.role in OVERSIGHT or person == self.id


class People:
    """The people some records name, as one reader may see them: looked up once (two
    queries) from every id the records carry."""

    def __init__(self, session: Session, reader: Reader, *records: Any) -> None:
        ids: set[uuid.UUID] = set()
        for record in records:
            _collect_ids(record, ids)
        self.reader = reader
        self._people: dict[uuid.UUID, tuple[str, str]] = {}  # user id -> (role, email)
        self._hidden: dict[str, str] = {}  # an id (lower case) that would name someone -> pseudonym
        self._hidden_emails: dict[str, str] = {}
        if not ids:
            return
        wanted = bindparam("ids", list(ids), type_=ARRAY(UUID(as_uuid=True)))  # one parameter, any size
        users = session.execute(select(User.id, User.role, User.email).where(User.id == any_(wanted))).all()
        wallets = session.execute(
            select(Wallet.id, User.id, User.role, User.email)
            .join(User, User.id == Wallet.user_id)
            .where(Wallet.id == any_(wanted))
        ).all()
        named = [(str(user_id), user_id, role, email) for user_id, role, email in users]
        named += [(str(wallet_id), user_id, role, email) for wallet_id, user_id, role, email in wallets]
        for key, user_id, role, email in named:
            self._people[user_id] = (role, email)
            if not reader.sees(user_id):
                self._hidden[key] = self._hidden_emails[email] = pseudonym(role, user_id, reader.settings)

    def sees(self, person: uuid.UUID | None) -> bool:
        return person is not None and self.reader.sees(person)

    def name(self, person: uuid.UUID | None) -> str | None:
        """The person's pseudonym ("investor-3f9a2c1d"), whoever reads; None for nobody."""
        if person is None or person not in self._people:
            return None
        return pseudonym(self._people[person][0], person, self.reader.settings)

    def email(self, person: uuid.UUID | None) -> str | None:
        """The person's email, if the reader may know who they are."""
        if person is None or not self.sees(person) or person not in self._people:
            return None
        return self._people[person][1]

    def id(self, person: uuid.UUID | None) -> uuid.UUID | None:
        """The person's id, if the reader may know who they are."""
        return person if self.sees(person) else None

    def redact(self, value: Any) -> Any:
        """`value` (JSON: dicts, lists, strings) with each id, wallet id or email of a person
        the reader may not know replaced by the person's pseudonym: {"investor_id":
        "investor-3f9a2c1d"}, the ledger account "wallet:investor-3f9a2c1d:reserved"."""
        if not self._hidden:
            return value
        if isinstance(value, dict):
            return {self.redact(k): self.redact(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact(v) for v in value]
        if isinstance(value, uuid.UUID):
            return self._hidden.get(str(value), value)
        if isinstance(value, str):
            text = _UUID.sub(lambda m: self._hidden.get(m.group(0).lower(), m.group(0)), value)
            if "@" in text:
                for email, name in self._hidden_emails.items():
                    text = text.replace(email, name)
            return text
        return value


def _collect_ids(value: Any, found: set[uuid.UUID]) -> None:
    if isinstance(value, uuid.UUID):
        found.add(value)
    elif isinstance(value, str):
        found.update(uuid.UUID(m) for m in _UUID.findall(value))
    elif isinstance(value, dict):
        for key, item in value.items():
            _collect_ids(key, found)
            _collect_ids(item, found)
    elif isinstance(value, list | tuple | set):
        for item in value:
            _collect_ids(item, found)
