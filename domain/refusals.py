"""Why a loan says no: one class per business refusal of the loan workflow's updates.

The workflow raises each as an ApplicationError whose type is `failure_type` (the class
name, except where histories already carry another name); the API turns each back into
problem+json through one table (api/workflow_calls.py). Pure: no Temporal, no HTTP here.
"""

from __future__ import annotations

from typing import ClassVar


class LoanRefusal(Exception):
    """A rule said no. Nothing was done; the caller may change the request and send again."""

    failure_type: ClassVar[str] = ""
    # Kept as each refusal has always been sent (the update's failure is in loan histories).
    non_retryable: ClassVar[bool] = False

    def __init__(self, message: str, **details: str) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "failure_type" not in cls.__dict__:
            cls.failure_type = cls.__name__


class NotThisLoan(LoanRefusal):
    """A request that names another loan (or none): a sealed request replayed out of another
    loan's history, never one the API sent."""

    non_retryable = True


class TryAgain(LoanRefusal):
    """The loan is moving to a new run (continue-as-new): the same request, again, succeeds."""


class LoanNotFunding(LoanRefusal):
    """An investment for a loan that is not (or no longer) open for funding."""


class OverFunding(LoanRefusal):
    """More than the loan still needs."""

    non_retryable = True


class InvalidInvestment(LoanRefusal):
    """The amount breaks a rule of the product: kopecks, the minimum, the share per investor."""


class NotAwaitingReview(LoanRefusal):
    """An operator's decision for a loan that is not waiting for one."""


class LoanNotActive(LoanRefusal):
    """An early repayment of a loan that is not being repaid."""


class EarlyRepaymentUnaffordable(LoanRefusal):
    """The borrower's wallet lacks what an early repayment needs."""

    failure_type = "InsufficientFunds"


class NotTradeable(LoanRefusal):
    """A secondary-market trade the loan cannot take now: an installment overdue, or the loan
    on its last installment (a trade of a loan that is not active is LoanNotActive)."""

    non_retryable = True


class AgreementsPending(LoanRefusal):
    """A secondary-market trade of a loan whose agreements are still being registered: a trade
    changes who holds the loan's claims, and the agreements name the holders at the payout.
    The same request succeeds once they are registered (seconds, with a renderer free)."""


class AgreementsRefused(LoanRefusal):
    """A secondary-market trade of a loan whose agreements were refused for good (the loan's
    facts do not add up): no trade until an operator has mended what they need."""


REFUSALS: dict[str, type[LoanRefusal]] = {
    cls.failure_type: cls
    for cls in (
        TryAgain,
        LoanNotFunding,
        OverFunding,
        InvalidInvestment,
        NotAwaitingReview,
        LoanNotActive,
        EarlyRepaymentUnaffordable,
        NotTradeable,
        AgreementsPending,
        AgreementsRefused,
    )
}
