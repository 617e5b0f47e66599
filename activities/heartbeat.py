"""Heartbeats for blocking activities, so a dead or frozen worker is noticed in seconds.

A sync activity spends its time inside database calls and cannot heartbeat between them; a
thread beside it heartbeats every HEARTBEAT_EVERY seconds while it runs. Killed or frozen
(SIGSTOP), the whole process stops beating, the workflow's heartbeat timeout (a few
seconds) fires, and Temporal gives the retry to another worker instead of waiting out the
start-to-close timeout. (The retry is safe against the frozen attempt: loans/exactly_once.py.)
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from temporalio import activity

P = ParamSpec("P")
R = TypeVar("R")

HEARTBEAT_EVERY = 1.0


def heartbeating(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if not activity.in_activity():
            return fn(*args, **kwargs)
        context = contextvars.copy_context()  # the activity's context, for activity.heartbeat
        done = threading.Event()

        def beat() -> None:
            while not done.wait(HEARTBEAT_EVERY):
                try:
                    context.run(activity.heartbeat)
                except RuntimeError:  # the activity's loop is shutting down
                    return

        beater = threading.Thread(target=beat, name=f"heartbeat-{fn.__name__}", daemon=True)
        beater.start()
        try:
            return fn(*args, **kwargs)
        finally:
            done.set()
            beater.join()

    return wrapper
