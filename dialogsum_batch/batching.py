"""Windowing, longest-first token-budget batches and input-order restore."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


def windows(items: Iterable[T], size: int, closes: Callable[[T], bool] = lambda item: False) -> Iterator[list[T]]:
    """Chunk a stream into lists of at most ``size``; an item for which ``closes`` is true ends its window."""
    window: list[T] = []
    for item in items:
        window.append(item)
        if len(window) >= size or closes(item):
            yield window
            window = []
    if window:
        yield window


def plan_batches(lengths: Sequence[int], batch_tokens: int, max_batch_size: int) -> list[list[int]]:
    """Positions sorted longest first, cut so that rows x longest row stays within the token budget.

    Sorting first keeps padding low; longest first makes an out-of-memory show up in the first batch.
    A row longer than the whole budget still gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for position in order:
        longest = lengths[current[0]] if current else lengths[position]
        if current and (len(current) >= max_batch_size or longest * (len(current) + 1) > batch_tokens):
            batches.append(current)
            current = []
        current.append(position)
    if current:
        batches.append(current)
    return batches


def padded_size(lengths: Sequence[int], batch: Sequence[int]) -> int:
    """Tokens a batch occupies once padded to its longest row."""
    return max(lengths[i] for i in batch) * len(batch)


class InOrder(Generic[T]):
    """Collects results by position and releases them in order, or all at once when asked."""

    def __init__(self, size: int):
        self.slots: list[T | None] = [None] * size
        self.filled = [False] * size
        self.released = [False] * size
        self.next = 0

    def put(self, position: int, value: T) -> None:
        self.slots[position] = value
        self.filled[position] = True

    def ready(self) -> Iterator[T]:
        """Values from the first not yet released up to the first gap."""
        while self.next < len(self.slots) and self.filled[self.next]:
            if not self.released[self.next]:
                yield self._release(self.next)
            self.next += 1

    def rest(self) -> Iterator[T]:
        """Every value filled but not yet released, gaps skipped (unordered output, interrupts)."""
        for position in range(self.next, len(self.slots)):
            if self.filled[position] and not self.released[position]:
                yield self._release(position)

    def _release(self, position: int) -> T:
        value = self.slots[position]
        self.slots[position] = None  # let finished results go as soon as they are written
        self.released[position] = True
        return value  # type: ignore[return-value]
