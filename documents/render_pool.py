"""The API's PDF rendering, in processes of its own.

WeasyPrint is pure Python for the most part and holds the GIL for a tenth of a second or
more a page: on a thread of the API process (asyncio.to_thread) it slows every other request
with it. Here renders run in a pool of PDF_RENDER_PROCESSES spawned processes, started at the
first render and stopped with the app (its lifespan). At most PDF_RENDERS_WAITING renders wait
for a free process; one more is refused with 503 and Retry-After instead of queueing without
bound (a few clients asking for big trails must not hold the API's memory and sockets)."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from core.errors import ServiceUnavailable
from documents.render import render_pdf

log = logging.getLogger("api")

# What a refused render is told to wait (a trail of a dozen steps renders in well under a
# second once a process runs; one of 400 steps, in about ten).
RETRY_AFTER_SECONDS = 5


def _end_with_the_api(api_pid: int) -> None:
    """In each render process, first thing: it exits within a second of the API process that
    started it, however that ended (a SIGKILL runs no lifespan; a pool's idle process would
    otherwise wait for work forever)."""

    def watch() -> None:
        while os.getppid() == api_pid:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, name="end-with-the-api", daemon=True).start()


class RenderPool:
    def __init__(self, processes: int, waiting: int) -> None:
        self.processes = processes
        # Admitted at once: one rendering in each process, `waiting` more in the queue.
        self.capacity = processes + waiting
        self._admitted = 0
        self._lock = threading.Lock()  # (a render is released from the pool's own thread)
        self._executor: ProcessPoolExecutor | None = None

    def _release(self, _: Future[bytes]) -> None:
        # When the render itself ends, not when its request does: a client that hangs up
        # does not free a place that a process is still rendering in.
        with self._lock:
            self._admitted -= 1

    def _submit(self, template: str, context: dict[str, Any]) -> tuple[ProcessPoolExecutor, Future[bytes]]:
        with self._lock:
            if self._admitted >= self.capacity:
                raise ServiceUnavailable(
                    "every PDF renderer is busy and the queue is full; send again shortly",
                    retry_after_seconds=RETRY_AFTER_SECONDS,
                )
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_end_with_the_api,
                    initargs=(os.getpid(),),
                )
            executor = self._executor
            future = executor.submit(render_pdf, template, context)
            self._admitted += 1
        future.add_done_callback(self._release)
        return executor, future

    async def render(self, template: str, context: dict[str, Any]) -> bytes:
        """The PDF, rendered in the pool; 503 when as many renders as it admits are under way."""
        executor: ProcessPoolExecutor | None = None
        try:
            executor, future = self._submit(template, context)
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            # A renderer died (killed, out of memory): the next render starts a new pool.
            log.error("a PDF render process died; the next render starts a new pool")
            with self._lock:
                # (submit refused: the current pool is the broken one; else, unless replaced already)
                broken = self._executor if executor is None or self._executor is executor else None
                if broken is not None:
                    self._executor = None
            if broken is not None:
                broken.shutdown(wait=False, cancel_futures=True)
            raise ServiceUnavailable(
                "the PDF renderer stopped; send again", retry_after_seconds=RETRY_AFTER_SECONDS
            ) from None

    def process_ids(self) -> list[int]:
        """The render processes now running (none before the first render)."""
        processes = getattr(self._executor, "_processes", None) or {}
        return list(processes)

    def shutdown(self) -> None:
        """Stops the processes, after the renders under way (the app's lifespan, at its end)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
