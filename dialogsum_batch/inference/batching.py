"""Windowing, longest-first token-budget batches and input-order restore."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class Flush:
    """A marker in a stream of items, not an item: hand over the window read so far (the input stalled)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "FLUSH"


FLUSH = Flush()


class Window(list):
    """A window of items; ``live`` when a stalled input ended it (a FLUSH), not its size or the end of input."""

    live = False


def windows(
    items: Iterable[T | Flush], size: int, closes: Callable[[T], bool] = lambda item: False
) -> Iterator[Window]:
    """A stream in lists of at most ``size``; an item for which ``closes`` is true ends its window,
    and so does a FLUSH (dropped: it is never an item of a window), which marks the window ``live``."""
    window = Window()
    for item in items:
        if isinstance(item, Flush):
            if window:  # a stall with nothing read since the last window flushes nothing
                window.live = True
                yield window
                window = Window()
            continue
        window.append(item)
        if len(window) >= size or closes(item):
            yield window
            window = Window()
    if window:
        yield window


def plan_batches(
    lengths: Sequence[int], batch_tokens: int, max_batch_size: int, batch_cost: int | None = None
) -> list[list[int]]:
    """Positions sorted longest first, grouped so that rows x longest row stays within the token budget.

    Sorting first keeps padding low; longest first makes an out-of-memory show up in the first batch.
    A row longer than the whole budget still gets a batch of its own. Where the batches end is chosen
    to minimise padded tokens plus ``batch_cost`` (default: an eighth of the budget, at least 1) per batch, the
    price of a batch's fixed per-step work: filling each batch greedily from the longest row puts a
    long row at the head of many short ones at every length gap, which on a few hundred records
    left a quarter of the tokens as padding.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    ends = batch_ends(
        [lengths[i] for i in order],
        batch_tokens,
        max_batch_size,
        max(1, batch_tokens // 8) if batch_cost is None else batch_cost,
    )
    return [order[start:end] for start, end in zip([0, *ends], ends)]


def spread(plan: list[list[int]], lanes: int) -> list[list[int]]:
    """The plan with its largest batches halved until there are ``lanes`` of them (or only single rows): a window
    of a few records, as live input sends, would otherwise leave all but one of the side-by-side lanes idle."""
    plan = list(plan)  # batches are replaced by their halves, never changed in place
    while len(plan) < lanes:
        largest = max(range(len(plan)), key=lambda b: len(plan[b]), default=None)
        if largest is None or len(plan[largest]) < 2:
            break
        batch = plan[largest]
        plan[largest : largest + 1] = [batch[: len(batch) // 2], batch[len(batch) // 2 :]]
    return plan


def batch_ends(longest_first: Sequence[int], batch_tokens: int, max_batch_size: int, batch_cost: int) -> list[int]:
    """End positions of the cheapest batches over lengths sorted longest first (dynamic programming, O(n x rows))."""
    n = len(longest_first)
    best = [0] + [0] * n  # best[j]: least cost of batching the first j rows
    start = [0] * (n + 1)  # start[j]: where the last batch of that best plan begins
    for end in range(1, n + 1):
        best[end] = -1
        for first in range(end - 1, max(-1, end - 1 - max_batch_size), -1):
            area = longest_first[first] * (end - first)  # the batch's first row is its longest
            if area > batch_tokens and end - first > 1:
                break
            cost = best[first] + area + batch_cost
            if best[end] < 0 or cost < best[end]:
                best[end], start[end] = cost, first
    ends, end = [], n
    while end > 0:
        ends.append(end)
        end = start[end]
    return ends[::-1]


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
