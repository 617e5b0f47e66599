"""Posting ledger transactions: the only way money moves.

A ledger transaction is a set of legs (account, signed amount) that sum to zero, stored
under an idempotency key built from business facts. The database applies each posting to
its account under the account's row lock and refuses what breaks an invariant (negative
wallet, unbalanced transaction, edits of history); this module adds the rules that make it
pleasant to call:

- Idempotency. The same key with the same content returns the first transaction and
  changes nothing; the same key with other content raises IdempotencyConflict.
- Lack of funds consumes nothing: InsufficientFunds is raised, nothing is stored, and the
  same key may be posted again later (when the money has arrived). A key is spent only by
  a transaction that succeeded.
- No deadlocks: one lock order for every movement of money, everywhere in the code.
    1. the loan's row (FOR NO KEY UPDATE), when the movement belongs to a loan: every money
       operation of a loan takes it first (loans/exactly_once.py), and post_transaction
       (post_transactions) takes it again (a no-op then) for callers that did not. A batch
       of postings (post_transactions) belongs to one loan at most, so no operation holds
       two loans' rows;
    2. the ledger accounts, in ascending id order: every account the movement touches plus
       the sibling account of every wallet it touches (lock_accounts). An operation that
       must read a balance before it knows its amounts (a collection, a default's cover)
       locks every account it may touch this way first, then reads;
    3. then the rows the movement goes with: the investor's yearly 259-FZ count, the
       read side (investments, installments), the loan's audit chain (its row already held).
  A deposit or withdrawal decision locks its own request row before step 2; nothing else
  locks those rows. Two transactions therefore never wait on each other in a cycle. Locking
  a wallet's two accounts together also makes a wallet's postings ordered by id the order
  its balance changed (the statement relies on it).
- All or nothing, in one round trip. The database function ledger_post (migration 0016)
  takes the locks, looks the key up under them, checks under them that the legs fit, and only
  then inserts: the refusals above (not enough money, an unknown account, two currencies, a
  key used for other content) come back as an outcome before anything is written, so the
  caller's transaction can go on (or roll back). The locks taken stay held until the caller's
  transaction ends (a caller that locks more after a refusal keeps to the lock order). An
  unexpected database error aborts the caller's transaction, which then rolls back whole. A
  movement of a loan then appends to the loan's trail (append_audit): more round trips.
- Batches in one round trip too (post_transactions; ledger_post_many, migration 0017): every
  lock of every posting first, in the order above, then each posting in turn, as if posted
  one by one; it stops at the first refusal. The postings before the refusal stay posted in
  the caller's transaction (the refusal carries them: posted_before), the ones after it are
  not tried, and the locks of all of them stay held.

Functions take the caller's Session and never commit: the caller's unit of work does.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from psycopg import errors as pg_errors
from sqlalchemy import Select, bindparam, select, union
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, aliased

from compliance.audit import append_audit
from core.db import idle_limit_to_set, limit_idle_in_transaction
from core.errors import IdempotencyConflict, InsufficientFunds, InvalidRequest, NotFound, PlatformError
from domain.money import has_at_most_two_decimals
from models.ledger import LedgerAccount, LedgerPosting, LedgerTransaction

MAX_KEY_LENGTH = 200
MAX_LEG_AMOUNT = Decimal("9999999999999.99")
MIN_BIGINT, MAX_BIGINT = -(2**63), 2**63 - 1  # (ledger_accounts.id)


@dataclass(frozen=True)
class Posted:
    """What post_transaction (or post_transactions, for each posting) did: the ledger
    transaction, and whether it was posted before."""

    id: uuid.UUID
    idempotency_key: str
    kind: str
    replayed: bool


@dataclass(frozen=True)
class Leg:
    """One side of a movement: `amount` is added to the account's balance (negative: taken)."""

    account_id: int
    amount: Decimal


def merge_legs(legs: Sequence[Leg]) -> list[Leg]:
    """One leg per account (an investor with two investments in a loan moves once), legs
    that cancel out dropped."""
    totals: dict[int, Decimal] = {}
    for leg in legs:
        totals[leg.account_id] = totals.get(leg.account_id, Decimal(0)) + leg.amount
    return [Leg(account_id, amount) for account_id, amount in totals.items() if amount != 0]


def _validate(key: str, kind: str, legs: Sequence[Leg]) -> None:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidRequest(f"an idempotency key is 1 to {MAX_KEY_LENGTH} characters")
    if not kind or len(kind) > 40:
        raise InvalidRequest("a ledger transaction needs a kind of at most 40 characters")
    if "\x00" in key or "\x00" in kind:
        # (PostgreSQL's text cannot hold it: refused here, the same way in a batch and alone)
        raise InvalidRequest("an idempotency key and a kind have no NUL character")
    if len(legs) < 2:
        raise InvalidRequest("a ledger transaction needs at least two legs")
    for leg in legs:
        # Exactly an int and exactly a Decimal: they are written into the statement's array
        # literals as text (_bigint_array, _numeric_array), where a str, or a subclass with a
        # __str__ or __format__ of its own, could add elements of its own.
        if type(leg.account_id) is not int or not MIN_BIGINT <= leg.account_id <= MAX_BIGINT:
            raise InvalidRequest("a leg's account is an integer account id")
        amount = leg.amount
        if type(amount) is not Decimal or not amount.is_finite():
            raise InvalidRequest("leg amounts are finite Decimals")
        if amount == 0:
            raise InvalidRequest("a leg of zero moves nothing; leave it out")
        if abs(amount) > MAX_LEG_AMOUNT:  # (first: a huge amount cannot even be rounded to kopeks)
            raise InvalidRequest(f"{amount} is beyond what an account can hold")
        if not has_at_most_two_decimals(amount):
            raise InvalidRequest(f"{amount} has more than two decimals")
    total = sum((leg.amount for leg in legs), Decimal(0))
    if total != 0:
        raise InvalidRequest(f"the legs sum to {total}, not zero")


def content_hash(kind: str, legs: Sequence[Leg], loan_id: uuid.UUID | None) -> str:
    """What a key promises: the kind, the loan and the legs (order does not matter)."""
    canonical = {
        "kind": kind,
        "loan_id": str(loan_id) if loan_id else None,
        "legs": sorted([leg.account_id, leg_amount_text(leg.amount)] for leg in legs),
    }
    return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()


def _lock_accounts_query() -> Select[tuple[int, str, str, Decimal]]:
    # By index: the accounts, and their wallets' accounts through the wallet's index (an OR of
    # the two scanned every account of the ledger).
    touched, sibling = aliased(LedgerAccount), aliased(LedgerAccount)
    wanted = bindparam("account_ids", expanding=True)
    to_lock = union(
        select(touched.id).where(touched.id.in_(wanted)),
        select(sibling.id).join(touched, sibling.wallet_id == touched.wallet_id).where(touched.id.in_(wanted)),
    )
    return (
        select(LedgerAccount.id, LedgerAccount.currency, LedgerAccount.code, LedgerAccount.balance)
        .where(LedgerAccount.id.in_(to_lock))
        .order_by(LedgerAccount.id)
        .with_for_update()
    )


# Built once: building a statement with aliases costs more than running it.
_LOCK_ACCOUNTS = _lock_accounts_query()


@dataclass(frozen=True)
class LockedAccount:
    currency: str
    code: str
    balance: Decimal  # (as of the lock: what the account holds until this transaction posts)


def lock_accounts(session: Session, account_ids: set[int]) -> dict[int, LockedAccount]:
    """Locks the accounts and their wallets' sibling accounts, in ascending id order.
    Returns the currency, code and balance of each locked account by id."""
    limit_idle_in_transaction(session)
    rows = session.execute(_LOCK_ACCOUNTS, {"account_ids": sorted(account_ids)}).all()
    found = {row.id: LockedAccount(row.currency, row.code, row.balance) for row in rows}
    missing = account_ids - found.keys()
    if missing:
        raise InvalidRequest(f"unknown ledger account(s): {sorted(missing)}")
    return found


def _expire_cached_accounts(session: Session, account_ids: set[int]) -> None:
    """The trigger changed balances in the database: cached account objects must reload."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, LedgerAccount) and obj.id in account_ids:
            session.expire(obj)


# Sent as the driver's own SQL (exec_driver_sql): the posting is the ledger's hottest statement,
# and a text() construct's compile and result handling cost more than its round trip.
# (Every parameter cast: psycopg sends a str or a None untyped.)
_LEDGER_POST = (
    "SELECT ledger_post(%(transaction_id)s::uuid, %(key)s::text, %(digest)s::text, %(kind)s::text, "
    "%(loan_id)s::uuid, %(description)s::text, %(details)s::jsonb, %(accounts)s::bigint[], %(amounts)s::numeric[], "
    "%(idle_limit_ms)s::text)"
)
_LEDGER_POST_MANY = "SELECT ledger_post_many(%(postings)s::jsonb, %(idle_limit_ms)s::text)"


@dataclass(frozen=True)
class Posting:
    """One ledger transaction to post: what post_transaction takes, for post_transactions."""

    key: str
    kind: str
    legs: Sequence[Leg]
    loan_id: uuid.UUID | None = None
    description: str | None = None
    details: Mapping[str, Any] | None = None


def post_transaction(
    session: Session,
    *,
    key: str,
    kind: str,
    legs: Sequence[Leg],
    loan_id: uuid.UUID | None = None,
    description: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> Posted:
    """Posts the legs as one ledger transaction, or returns the one already posted under key.

    One round trip: the database function ledger_post (migration 0016) takes the locks in the
    lock order, looks the key up under them and inserts; a movement that belongs to a loan then
    appends to the loan's trail (append_audit), in the same database transaction."""
    posting = Posting(key, kind, legs, loan_id, description, details)
    digest = _checked_digest(posting)
    ordered = _ordered_legs(posting)
    transaction_id = uuid.uuid4()
    outcome: dict[str, Any] = _call(
        session,
        _LEDGER_POST,
        {
            "transaction_id": str(transaction_id),
            "key": key,
            "digest": digest,
            "kind": kind,
            "loan_id": str(loan_id) if loan_id else None,
            "description": description,
            "details": json.dumps(dict(details or {})),
            "accounts": _bigint_array([leg.account_id for leg in ordered]),
            "amounts": _numeric_array([leg.amount for leg in ordered]),
            "idle_limit_ms": idle_limit_to_set(session),
        },
    )
    return _settle(session, posting, ordered, transaction_id, outcome)


def post_transactions(session: Session, postings: Sequence[Posting]) -> list[Posted]:
    """Posts several ledger transactions in one round trip, in order: the same answers, refusals
    and stored rows as calling post_transaction for each in turn (each is its own ledger
    transaction, under its own key), for callers that move money many times in one unit of work.
    Two differences, both stricter: every posting's input is checked (legs, key, kind) before
    any is sent, so a malformed one posts nothing; and the postings belong to one loan at most
    (the lock order: no operation holds two loans' rows).

    The database function ledger_post_many (migration 0017) first takes every lock the postings
    need, in the lock order (the loan's row, then all their accounts and siblings, ascending
    id), then posts them one after the other with ledger_post and stops at the first refusal.
    The refusal is raised as post_transaction raises it, with `posted_before` (the Posted of
    the postings before it, which stay posted in the caller's transaction: committing after
    catching it commits them) and `refused_at` (its index); the postings after it are not tried."""
    if not postings:
        return []
    prepared = []
    for posting in postings:
        digest = _checked_digest(posting)
        ordered = _ordered_legs(posting)
        prepared.append((posting, uuid.uuid4(), digest, ordered))
    loans = {posting.loan_id for posting in postings} - {None}
    if len(loans) > 1:
        raise InvalidRequest("a batch of postings moves the money of one loan at most")
    batch = [
        {
            "transaction_id": str(transaction_id),
            "key": posting.key,
            "digest": digest,
            "kind": posting.kind,
            "loan_id": str(posting.loan_id) if posting.loan_id else None,
            "description": posting.description,
            "details": dict(posting.details or {}),
            "accounts": [leg.account_id for leg in ordered],
            # (as text: json.dumps takes no Decimal, and a float on the way would not be exact)
            "amounts": [leg_amount_text(leg.amount) for leg in ordered],
        }
        for posting, transaction_id, digest, ordered in prepared
    ]
    outcomes: list[dict[str, Any]] = _call(
        session,
        _LEDGER_POST_MANY,
        {"postings": json.dumps(batch), "idle_limit_ms": idle_limit_to_set(session)},
    )
    # One answer per posting tried: all of them, or up to the first refusal.
    stopped = outcomes and outcomes[-1]["outcome"] not in ("posted", "replayed")
    if len(outcomes) > len(postings) or (len(outcomes) < len(postings) and not stopped):
        raise RuntimeError(f"ledger_post_many answered {len(outcomes)} outcomes to {len(postings)} postings")
    posted: list[Posted] = []
    for index, ((posting, transaction_id, _, ordered), outcome) in enumerate(zip(prepared, outcomes, strict=False)):
        try:
            posted.append(_settle(session, posting, ordered, transaction_id, outcome))
        except PlatformError as refused:
            refused.posted_before = posted  # type: ignore[attr-defined]
            refused.refused_at = index  # type: ignore[attr-defined]
            raise
    return posted


def leg_amount_text(amount: Decimal) -> str:
    """A leg's amount as text, exact: two decimals (a validated amount has at most two), no
    exponent. The same text is hashed (content_hash), sent (_numeric_array) and recorded."""
    return Decimal.__format__(amount, ".2f")


# The posting's accounts and amounts go to ledger_post as array literals, text the statement
# casts (::bigint[], ::numeric[]): psycopg's adaptation of a list finds each element's type
# on every call, about 0.05 ms of a posting's 0.55 ms of Python CPU here. Only what _validate
# let through is written: ints (exactly), and Decimals through leg_amount_text.
def _bigint_array(ids: Sequence[int]) -> str:
    return "{" + ",".join(int.__str__(i) for i in ids) + "}"


def _numeric_array(amounts: Sequence[Decimal]) -> str:
    return "{" + ",".join(leg_amount_text(amount) for amount in amounts) + "}"


def _checked_digest(posting: Posting) -> str:
    _validate(posting.key, posting.kind, posting.legs)
    return content_hash(posting.kind, posting.legs, posting.loan_id)


def _ordered_legs(posting: Posting) -> list[Leg]:
    return sorted(posting.legs, key=lambda leg: (leg.account_id, leg.amount))


def _call(session: Session, statement: str, parameters: dict[str, Any]) -> Any:
    # (a driver statement does not autoflush: rows the caller added, a loan or an account, must
    # be in the database before the function looks for them)
    session.flush()
    try:
        return session.connection().exec_driver_sql(statement, parameters).scalar_one()
    except DBAPIError as exc:
        if isinstance(exc.orig, pg_errors.RaiseException):
            raise InvalidRequest(str(exc.orig).splitlines()[0]) from None
        raise


def _settle(
    session: Session, posting: Posting, ordered: list[Leg], transaction_id: uuid.UUID, outcome: dict[str, Any]
) -> Posted:
    """The answer to one posting from the database function's outcome: what was posted, or the
    refusal raised. `ordered`: its legs as sent (_ordered_legs)."""
    key = posting.key
    match outcome["outcome"]:
        case "replayed":
            return Posted(id=uuid.UUID(outcome["id"]), idempotency_key=key, kind=outcome["kind"], replayed=True)
        case "conflict":
            raise IdempotencyConflict(
                f"idempotency key {key!r} was already used for a different movement of money", idempotency_key=key
            )
        case "insufficient":
            raise _insufficient(session, posting.legs)
        case "unknown_accounts":
            raise InvalidRequest(f"unknown ledger account(s): {outcome['accounts']}")
        case "currencies":
            raise InvalidRequest("a ledger transaction moves one currency")
        case "no_loan":
            raise NotFound(f"no loan {posting.loan_id}")
        case "posted":
            pass
        case unexpected:
            raise RuntimeError(f"ledger_post answered {unexpected!r}")
    _expire_cached_accounts(session, {leg.account_id for leg in posting.legs})
    if posting.loan_id is not None:
        # The loan's trail records the movement in the same database transaction.
        codes: dict[str, str] = outcome["codes"]
        append_audit(
            session,
            posting.loan_id,
            f"ledger:{key}",
            f"ledger.{posting.kind}",
            note=posting.description,
            details={
                "transaction_id": transaction_id,
                "idempotency_key": key,
                "kind": posting.kind,
                "currency": outcome["currency"],
                "legs": [
                    {"account": codes[str(leg.account_id)], "amount": leg_amount_text(leg.amount)} for leg in ordered
                ],
            },
        )
    return Posted(id=transaction_id, idempotency_key=key, kind=posting.kind, replayed=False)


def _insufficient(session: Session, legs: Sequence[Leg]) -> InsufficientFunds:
    debits = [leg for leg in legs if leg.amount < 0]
    short: list[dict[str, str]] = []
    for leg in debits:
        account = session.get(LedgerAccount, leg.account_id, populate_existing=True)
        if account is not None and not account.allow_negative and account.balance + leg.amount < 0:
            short.append({"account": account.code, "balance": f"{account.balance:.2f}", "needed": f"{-leg.amount:.2f}"})
    if short:
        first = short[0]
        return InsufficientFunds(
            f"not enough money on {first['account']}: {first['balance']} there, {first['needed']} needed",
            accounts=short,
        )
    return InsufficientFunds("not enough money on an account of this movement")


def transaction_legs(session: Session, transaction_id: uuid.UUID) -> list[LedgerPosting]:
    return list(
        session.scalars(
            select(LedgerPosting).where(LedgerPosting.transaction_id == transaction_id).order_by(LedgerPosting.id)
        )
    )


@dataclass(frozen=True)
class PostedRecord:
    id: uuid.UUID
    kind: str
    details: dict[str, Any]


def find_posted(session: Session, key: str) -> PostedRecord | None:
    """The ledger transaction posted under key, if any: lets an activity whose amounts depend
    on balances at the time (a partial collection) return its first answer when retried."""
    row = session.execute(
        select(LedgerTransaction.id, LedgerTransaction.kind, LedgerTransaction.details).where(
            LedgerTransaction.idempotency_key == key
        )
    ).first()
    return PostedRecord(id=row.id, kind=row.kind, details=row.details) if row else None
