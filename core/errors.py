"""One error base class for the platform. The API turns each into RFC 9457 problem+json;
activities turn the non-retryable ones into non-retryable ApplicationErrors."""

from __future__ import annotations

from typing import Any


class PlatformError(Exception):
    status_code: int = 400
    type_slug: str = "bad-request"
    title: str = "Bad request"
    # Retrying cannot help (bad input, a business rule said no): activities must not retry.
    non_retryable: bool = True

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(PlatformError):
    status_code = 404
    type_slug = "not-found"
    title = "Not found"


class Unauthorized(PlatformError):
    status_code = 401
    type_slug = "unauthorized"
    title = "Not authenticated"


class Forbidden(PlatformError):
    status_code = 403
    type_slug = "forbidden"
    title = "Forbidden"


class Conflict(PlatformError):
    status_code = 409
    type_slug = "conflict"
    title = "Conflict"


class InvalidRequest(PlatformError):
    status_code = 422
    type_slug = "invalid-request"
    title = "Invalid request"


class PlanWonAwardEvent(Conflict):
    """A plan that won an award event is awarded, not cancelled (`award_event_id` says which)."""


class InsufficientFunds(Conflict):
    """Not enough available money. A posting refused for it stores nothing: the same key may be posted later.
    A loan's money operation records it as its answer for its key (loans/exactly_once.py)."""

    type_slug = "insufficient-funds"
    title = "Insufficient funds"


class AnnualLimitExceeded(Conflict):
    """259-FZ: a non-qualified investor may invest at most 600,000 RUB a calendar year."""

    type_slug = "annual-limit-exceeded"
    title = "Annual investment limit exceeded"


class IdempotencyConflict(InvalidRequest):
    """The same idempotency key was used before with different content."""

    type_slug = "idempotency-key-reused"
    title = "Idempotency key reused with different content"


class ServiceUnavailable(PlatformError):
    """A dependency (PostgreSQL, Temporal, the PDF renderer) could not take the request; send
    again after Retry-After seconds."""

    status_code = 503
    type_slug = "service-unavailable"
    title = "Service unavailable"
    non_retryable = False

    def __init__(self, detail: str, retry_after_seconds: int = 5, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers = {"Retry-After": str(retry_after_seconds)}


class IdempotencyKeyInFlight(Conflict):
    """A request with this idempotency key is still being processed: ask again shortly."""

    type_slug = "idempotency-key-in-flight"
    title = "A request with this idempotency key is in progress"
    headers = {"Retry-After": "1"}


class TooManyRequests(PlatformError):
    status_code = 429
    type_slug = "too-many-requests"
    title = "Too many requests"
    non_retryable = False

    def __init__(self, detail: str, retry_after_seconds: int) -> None:
        super().__init__(detail, retry_after_seconds=retry_after_seconds)
        self.headers = {"Retry-After": str(retry_after_seconds)}


class OutcomeUnknown(ServiceUnavailable):
    """The request reached the loan, but its answer did not come back in time: it may have
    been done, or may still be done. The same request with the same Idempotency-Key learns
    the real outcome (and does nothing twice)."""

    type_slug = "outcome-unknown"
    title = "Outcome unknown"
