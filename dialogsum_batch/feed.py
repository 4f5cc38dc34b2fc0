"""Input read ahead on a thread, so a stalled producer never keeps a stop (SIGTERM) waiting.

A read from stdin or a FIFO blocks until the producer writes again, and Python retries it after a
signal: a job reading on its main thread would notice SIGTERM only when more input came. Here a
thread reads into a bounded queue and the job takes items with a timeout, looking at its stop flag
between tries. (The same timeout is where ``--max-wait`` can cut a window when the input stalls.)
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

READ_AHEAD = 64  # items queued ahead of the engine: reading overlaps generation, memory stays bounded
POLL_SECONDS = 0.1  # how often a job waiting for input looks at its stop flag
_END = object()  # the reader reached the end of the input


class _Failure:
    """An unexpected exception in the reader thread, raised again where the job takes its next item."""

    def __init__(self, error: BaseException):
        self.error = error


class Feed(Generic[T]):
    """Iterates ``items`` read on a background thread; ends early, with ``cut`` set, once ``should_stop``.

    The stop is looked at before every item, so what the job already took is all it gets: a stop while
    the input is stalled ends the input there, and the records taken so far can still be finished.
    Use as a context manager: leaving it tells the thread to stop (a thread blocked in a read is a
    daemon, and stdin is read through a reader of its own, so it never holds up the process's exit).
    """

    def __init__(self, items: Iterable[T], should_stop: Callable[[], bool], size: int = READ_AHEAD,
                 poll: float = POLL_SECONDS):
        self.items = items
        self.should_stop = should_stop
        self.poll = poll
        self.cut = False  # the input was ended by a stop, not by its end
        self.queue: queue.Queue = queue.Queue(maxsize=size)
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._read, name="dialogsum-reader", daemon=True)

    def __enter__(self) -> Feed[T]:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed.set()

    def __iter__(self) -> Iterator[T]:
        while True:
            if self.should_stop():
                self.cut = True
                return
            try:
                value = self.queue.get(timeout=self.poll)
            except queue.Empty:
                continue  # a stalled producer: look at the stop flag again
            if value is _END:
                return
            if isinstance(value, _Failure):
                raise value.error
            yield value

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
