"""Pseudonyms: how the platform names a person to someone who has no need to know who they are.

`pseudonym("investor", user_id, settings)` is "investor-3f9a2c1d": the role, then the first
8 hex digits of HMAC-SHA256 keyed with the deployment's JWT_SECRET over
b"pseudonym:" + the user id's 16 bytes.

- Stable per deployment: the same person has the same pseudonym in every answer, in every
  loan (a borrower tells their investors apart; an operator finds who it is).
- Not reversible without the secret: ids are not guessable from it, nor checkable against
  a guessed id (it is keyed, not a plain hash).
- Changes if JWT_SECRET rotates: every pseudonym changes with it. What must stay linked to a
  person for good (an agreement's parties) is linked in the register by ids, not by this.
- 8 hex digits are a name, not a key: two people may share one (among 1,000 people, about
  one chance in 10,000). Nothing looks a person up by it.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

from core.settings import Settings


def pseudonym(role: str, user_id: uuid.UUID, settings: Settings) -> str:
    """The role and a stable, keyed pseudonym of the user: "operator-5c0e19a4"."""
    key = settings.JWT_SECRET.get_secret_value().encode()
    digest = hmac.new(key, b"pseudonym:" + user_id.bytes, hashlib.sha256).hexdigest()
    return f"{role}-{digest[:8]}"
