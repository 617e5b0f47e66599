"""Business errors raised in activities become non-retryable ApplicationErrors whose type is
the error's class name, so the workflow (and through it the API) can tell them apart."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from temporalio.exceptions import ApplicationError

from core.errors import PlatformError

P = ParamSpec("P")
R = TypeVar("R")


def business_errors_are_final(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except PlatformError as exc:
            raise ApplicationError(
                exc.detail,
                {"status": exc.status_code, **exc.extra},
                type=type(exc).__name__,
                non_retryable=exc.non_retryable,
            ) from exc

    return wrapper
