"""A loan's status, and the transitions the loan workflow may make between them.

One spelling for the workflow, the read side's table (its CHECK constraint) and the API's
schemas (an enum in the OpenAPI document). The table below is the lifecycle diagram; the
workflow's one transition method refuses anything not in it.

    pending -> scoring -> approved -> funding -> funded -> active -> repaid
                      \\-> rejected            \\-> rejected  \\-> rejected  \\-> defaulted
    (scoring -> scoring: scored, now awaiting an operator's review)
"""

from __future__ import annotations

from enum import StrEnum


class LoanStatus(StrEnum):
    pending = "pending"
    scoring = "scoring"
    approved = "approved"
    funding = "funding"
    funded = "funded"
    active = "active"
    repaid = "repaid"
    defaulted = "defaulted"
    rejected = "rejected"

    @property
    def is_final(self) -> bool:
        return not ALLOWED_TRANSITIONS[self]


ALLOWED_TRANSITIONS: dict[LoanStatus, frozenset[LoanStatus]] = {
    LoanStatus.pending: frozenset({LoanStatus.scoring}),
    # scoring -> scoring: the score is in and the loan waits for an operator's decision
    LoanStatus.scoring: frozenset({LoanStatus.scoring, LoanStatus.approved, LoanStatus.rejected}),
    LoanStatus.approved: frozenset({LoanStatus.funding}),
    # rejected: the funding window closed first
    LoanStatus.funding: frozenset({LoanStatus.funded, LoanStatus.rejected}),
    # rejected: the disbursement was refused for good (every reservation is released)
    LoanStatus.funded: frozenset({LoanStatus.active, LoanStatus.rejected}),
    LoanStatus.active: frozenset({LoanStatus.repaid, LoanStatus.defaulted}),
    LoanStatus.repaid: frozenset(),
    LoanStatus.defaulted: frozenset(),
    LoanStatus.rejected: frozenset(),
}

FINAL_STATUSES = tuple(s for s in LoanStatus if not ALLOWED_TRANSITIONS[s])


class IllegalTransition(Exception):
    """A transition the lifecycle does not have: a bug in the workflow, never the user's."""


def check_transition(current: LoanStatus, new: LoanStatus) -> None:
    if new not in ALLOWED_TRANSITIONS[current]:
        raise IllegalTransition(f"a loan does not go from {current} to {new}")
