"""Input read ahead on a thread, so a stalled producer never keeps a stop (SIGTERM) waiting.

A read from stdin or a FIFO blocks until the producer writes again, and Python retries it after a
signal: a job reading on its main thread would notice SIGTERM only when more input came. Here a
thread reads into a bounded queue and the job takes items with a timeout, looking at its stop flag
between tries. The same timeout is where ``--max-wait`` ends a window early when the input runs dry: once the
oldest record taken since the last flush has waited ``max_wait`` seconds and no next record is ready, the feed
yields a FLUSH marker and the window read so far is batched.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from .batching import FLUSH, Flush

T = TypeVar("T")

READ_AHEAD = 64  # items queued ahead of the engine: reading overlaps generation, memory stays bounded
POLL_SECONDS = 0.1  # how often a job waiting for input looks at its stop flag
_END = object()  # the reader reached the end of the input
_EMPTY = object()  # nothing came from the reader in time


class _Failure:
    """An unexpected exception in the reader thread, raised again where the job takes its next item."""

    def __init__(self, error: BaseException):
        self.error = error


class Feed(Generic[T]):
    """Iterates ``items`` read on a background thread; ends early, with ``stopped`` set, once ``should_stop``.

    With ``max_wait`` > 0, a FLUSH follows the items taken so far once the first of them was taken
    ``max_wait`` seconds ago and the queue is empty: a live producer's records wait about that long, however
    steady its pace, while input that is always ready (a file, a fast pipe) still fills whole windows. The
    clock starts again after every ``window`` items (a full window), so a record's wait is measured from the
    first record of its own window, not from an earlier one.
    The stop is looked at before every item, so what the job already took is all it gets: a stop while
    the input is stalled ends the input there, and the records taken so far can still be finished.
    Use as a context manager: leaving it tells the thread to stop (a thread blocked in a read is a
    daemon, and stdin is read through a reader of its own, so it never holds up the process's exit).
    """

    def __init__(
        self,
        items: Iterable[T],
        should_stop: Callable[[], bool],
        size: int = READ_AHEAD,
        poll: float = POLL_SECONDS,
        max_wait: float = 0.0,
        window: int = 0,
    ):
        self.items = items
        self.should_stop = should_stop
        self.poll = poll
        self.max_wait = max_wait  # seconds of silence that end the window read so far; 0 = never
        self.window = window  # items a full window holds: the next one starts a new window and a new deadline
        self.stopped = False  # the input was ended by a stop, not by its end
        self.queue: queue.Queue = queue.Queue(maxsize=size)
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._read, name="dialogsum-reader", daemon=True)

    def __enter__(self) -> Feed[T]:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed.set()

    def __iter__(self) -> Iterator[T | Flush]:
        pending = False  # items were taken since the last FLUSH or full window: running dry should flush them
        since = time.monotonic()  # when the first of them was taken
        taken = 0  # items taken into the window being filled
        while True:
            if self.should_stop():
                self.stopped = True
                return
            timing = pending and self.max_wait > 0
            left = max(0.0, since + self.max_wait - time.monotonic()) if timing else self.poll
            value = self._take(min(self.poll, left))
            if value is _EMPTY:  # nothing ready: flush once the oldest record has waited enough, look at the stop
                if timing and time.monotonic() - since >= self.max_wait:
                    pending, taken = False, 0
                    yield FLUSH
                continue
            if value is _END:
                return
            if isinstance(value, _Failure):
                raise value.error
            yield value
            if not pending:  # the window's oldest record since the last flush: the deadline runs from here
                pending, since = True, time.monotonic()
            taken += 1
            if taken == self.window:  # a full window went to the engine: the next record's wait starts afresh
                pending, taken = False, 0

    def _take(self, timeout: float) -> Any:
        """The next value from the reader, or _EMPTY when none came within ``timeout`` seconds."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return _EMPTY

    def _read(self) -> None:
        """The thread: every item, then the end marker; stops early once the job has closed the feed."""
        iterator = iter(self.items)
        try:
            for item in iterator:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as exc:  # a bug in a reader must surface in the job, not die with the thread
            self._put(_Failure(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()  # a generator's finally closes the file it was reading

    def _put(self, value: object) -> bool:
        """Queue ``value``, waiting while the queue is full; False once the job has closed the feed."""
        while not self.closed.is_set():
            try:
                self.queue.put(value, timeout=self.poll)
                return True
            except queue.Full:
                continue
        return False
