"""Gives the worker's freed heap memory back to the operating system, now and then.

glibc keeps the pages of freed memory resident unless they sit at the top of its heap. A
diagnostic build of the worker read glibc's mallinfo2 after rounds of 1,000 loans opened: 212,
209 and 231 MiB of heap at 1,000, 2,000 and 3,000 loans, of which 103, 108 and 116 MiB free,
while the count of Python's objects stayed near 300,000. Which allocations left the free blocks
was not traced; the worker's sticky cache evicting one loan's sandbox for another's is the
likely churn. malloc_trim(0) returns every whole free page of every arena to the system
(madvise), wherever it lies; a free piece smaller than a page stays.

A thread of its own makes the call, and ctypes releases the GIL during it, so the event loop
goes on. It is not free: it holds each arena's lock while it walks that arena, so a thread of
the worker that allocates meanwhile (the event loop, an activity, Temporal's core) may wait for
the length of a trim; and a page given back is zeroed and faulted in again when the heap next
grows into it. Giving 100 MiB back took 17 ms here; a trim that takes over 100 ms is logged.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache

log = logging.getLogger("worker")

SLOW_TRIM_SECONDS = 0.1


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    # (the symbols of this process as loaded: the C library it runs on, no ldconfig lookup)
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    # (a ctypes function, typed by argtypes and restype above)
    return trim  # type: ignore[no-any-return]


def can_trim_heap() -> bool:
    return _malloc_trim() is not None


def trim_heap() -> bool:
    """Returns the heap's free pages to the system now; False if this C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def trim_heap_every(seconds: float, stop: threading.Event) -> threading.Thread | None:
    """A daemon thread trimming the heap every `seconds` until `stop` is set; None (nothing
    started) when `seconds` is 0 or the C library cannot trim."""
    if seconds <= 0:
        return None
    if not can_trim_heap():
        log.info("this C library has no malloc_trim: the worker's heap is not trimmed")
        return None

    def run() -> None:
        while not stop.wait(seconds):
            started = time.perf_counter()
            trim_heap()
            took = time.perf_counter() - started
            if took > SLOW_TRIM_SECONDS:
                log.warning("a heap trim took %.0f ms", took * 1000)

    thread = threading.Thread(target=run, name="heap-trim", daemon=True)
    thread.start()
    return thread


@contextmanager
def trimming_heap(seconds: float) -> Iterator[None]:
    """The heap trimmed every `seconds` while the block runs (the worker's life)."""
    stop = threading.Event()
    thread = trim_heap_every(seconds, stop)
    try:
        yield
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=5)
            if thread.is_alive():
                log.warning("the heap trim thread did not end within 5 s (a daemon: it ends with the process)")
