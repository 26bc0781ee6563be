"""Ctrl-C during `meterlake run`: the streams stop between triggers, without stack traces.

Python turns SIGINT into KeyboardInterrupt wherever the main thread is, which
is usually inside a py4j call (starting a query, waiting on one). Cut there,
the call's answer is lost and the queries are stopped half way through a
micro-batch: Spark cancels its jobs and logs InterruptedExceptions. So while
the streams run, SIGINT only counts (`Interrupts`): the first Ctrl-C asks for
a stop, and `stop_between_triggers` stops each query once it is between two
micro-batches (its status says no trigger is active). A second Ctrl-C stops
the queries at once. Spark's JVM and its Python workers ignore a Ctrl-C of
the terminal (pyspark starts the JVM with SIGINT ignored, and the workers run
in their own process group), so only this process sees it.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable
from types import FrameType, TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql.streaming import StreamingQuery

POLL_S = 0.2  # how often a running batch is checked for its end while stopping


class Interrupts:
    """While entered (in the main thread), SIGINT increments `count` instead of raising
    KeyboardInterrupt, and the first one `announce`s the stop. Elsewhere it does nothing,
    and Ctrl-C stays a KeyboardInterrupt."""

    def __init__(self, on_first: Callable[[], None] = lambda: None) -> None:
        self.count = 0
        self._on_first = on_first
        self._announced = False
        self._previous: object = None
        self._installed = False

    def announce(self) -> None:
        """Run `on_first` once, after the first Ctrl-C (again from the main code when the
        signal came in the middle of a write to the same stream)."""
        if self.count and not self._announced:
            self._on_first()
            self._announced = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        try:
            self.announce()
        except (RuntimeError, OSError):  # e.g. "reentrant call" into stdout: later
            pass

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]
            self._installed = False


def between_triggers(query: StreamingQuery) -> bool:
    """True when the query runs no micro-batch now (or has ended)."""
    return not query.isActive or not query.status.get("isTriggerActive", False)


def stop_between_triggers(
    queries: Iterable[StreamingQuery],
    now: Callable[[], bool] = lambda: False,
    poll_s: float = POLL_S,
    idle: Callable[[StreamingQuery], bool] = between_triggers,
) -> None:
    """Stop every query as soon as it is between two micro-batches; all of them at once
    when `now()` turns true (a second Ctrl-C)."""
    pending = list(queries)
    while pending:
        for query in list(pending):
            if now() or idle(query):
                query.stop()
                pending.remove(query)
        if pending:
            time.sleep(poll_s)
