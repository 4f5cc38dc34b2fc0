"""The batch engine: items in, one outcome per item out, in input order. No I/O, no ROUGE, no formatting.

A bounded window of items is read at a time, its records sorted by token length and grouped into batches
under a token budget (longest first, so an out-of-memory shows up at once); each batch is generated and
its outcomes released as soon as every earlier item's outcome is out. Rows, ROUGE and counts of what was
written live with the outputs (``outputs.py``); the engine counts only its own work (``EngineCounts``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields

from ..backends import Backend, Encoded, Generated, OutOfMemory
from ..config import BatchSettings, LongSettings
from ..errors import InputError
from ..logs import Say
from .batching import Flush, InOrder, padded_size, plan_batches, spread, windows
from .chunking import dialogue_pieces
from .records import BadRecord, Item, Record

MAX_ROUNDS = 4  # --long chunk: rounds of summarizing joined summaries again, at most (each shrinks them)
MIN_BUDGET = 8  # tokens: a piece budget below this is not worth chunking for


class Interrupted(Exception):
    """A stop was asked for (SIGINT / SIGTERM); the outcomes already finished were yielded first."""


@dataclass(frozen=True)
class Outcome:
    """What became of one item: a summary, or the error that kept it from one."""

    position: int  # the item's place in the engine's input, from 0
    item: Item | None  # None only on the way between processes (the main process holds the items)
    summary: str | None = None
    error: InputError | None = None  # unreadable, or out of memory even alone
    truncated: bool = False  # the source was truncated to the model's limit
    tokens: int = 0  # summary tokens generated (every piece and round of a long record)
    chunks: int = 0  # --long chunk: the pieces a record longer than the model was summarized in


@dataclass(frozen=True)
class Failed:
    """A row that generated no summary, and why (out of memory even alone)."""

    reason: str


Result = Generated | Failed  # what generating one row gave


@dataclass(frozen=True)
class Row:
    """One sequence to generate: a record, or a piece of a long one (``piece`` set)."""

    place: int  # the record's place in its window
    ids: list[int]
    truncated: bool = False
    piece: int | None = None


@dataclass
class Long:
    """A record summarized in pieces: the summaries gathered so far in this round, and the totals."""

    expected: int = 0  # pieces in this round
    chunks: int = 0  # pieces of the dialogue itself (the first round)
    tokens: int = 0  # summary tokens generated over every round
    round: int = 0  # 0: the dialogue's pieces; 1 and on: pieces of joined summaries
    summaries: dict[int, str] = field(default_factory=dict)
    failed: bool = False  # a piece ran out of memory even alone: the record is an error


@dataclass
class Pass:
    """One window on its way through the engine: its items, where it starts in the engine's input, the outcomes
    waiting to be released in order, and (``--long chunk``) the records in pieces, by window place."""

    items: Sequence[Item]
    offset: int
    results: InOrder[Outcome]
    pending: dict[int, Long] = field(default_factory=dict)

    def put(self, outcomes: Iterable[Outcome]) -> None:
        for outcome in outcomes:
            self.results.put(outcome.position - self.offset, outcome)


@dataclass(frozen=True)
class Timed:
    """A batch's generated rows, the out-of-memory splits it took, and when it ran (``time.perf_counter``)."""

    generated: list[Result]
    splits: int
    began: float
    ended: float


@dataclass
class EngineCounts:
    """The engine's own work, for the summary: batches, memory back-offs, padding and generation time."""

    batches: int = 0
    oom_splits: int = 0
    real_tokens: int = 0  # source tokens batched
    padded_tokens: int = 0  # the same batches padded to their longest row
    generate_seconds: float = 0.0

    def add(self, other: EngineCounts, side_by_side: bool = False) -> None:
        """Add ``other``'s counts; ``side_by_side`` engines (other processes) overlap in time: the longest counts."""
        for name in (f.name for f in fields(self)):
            mine, theirs = getattr(self, name), getattr(other, name)
            setattr(self, name, max(mine, theirs) if side_by_side and name == "generate_seconds" else mine + theirs)


# ---------------------------------------------------------------------------- memory


def _libc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, where the C library has one (not macOS, not musl)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _libc_trim()


def trim_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc; elsewhere nothing to do).

    Batches of ever-different shapes leave torch's freed activations and the tokenizer's
    buffers scattered over glibc's heap, which then creeps up as a long run goes on: 20,000
    records peaked 20-25% above 2,000. Trimmed after every batch, the two peaks stay 0-6% apart.
    Trimming less often (every half second) let them drift 5-19% apart from run to run. The
    cost is refaulting the freed pages: up to 8% on the tiny model's 0.1-second batches,
    nothing measurable on real models, whose batches take seconds.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


# ---------------------------------------------------------------------------- engine


class Engine:
    """Runs a stream of items through a backend: ``run`` yields one Outcome per item, in input order
    (or as batches finish, with ``unordered``).

    ``should_stop`` is looked at between batches: when it turns true, the outcomes already finished are
    yielded (gaps skipped; unreadable items are left to be read again) and Interrupted is raised. A window
    that a stalled input ended early (live input: a FLUSH) is finished first: its records came from a producer that
    cannot send them again, and there are only as many as arrived in about ``max_wait`` seconds.
    ``close_on_bad``: an unreadable item ends its window, so under ``--on-error fail`` every record before
    it is finished before the failure is reported. A backend that runs batches side by side
    (``concurrent_batches``, CTranslate2 on the CPU) gets that many at once, and a window of fewer batches
    has its largest ones halved so that no lane idles.
    """

    def __init__(
        self,
        backend: Backend,
        batch: BatchSettings,
        *,
        long: LongSettings | None = None,
        close_on_bad: bool = False,
        should_stop: Callable[[], bool] = lambda: False,
        log: Say = lambda _: None,
    ):
        self.backend = backend
        self.batch = batch
        self.long = long or LongSettings()
        self.close_on_bad = close_on_bad
        self.should_stop = should_stop
        self.log = log
        self.counts = EngineCounts()
        self.lanes = max(1, getattr(backend, "concurrent_batches", 1))  # batches generated side by side

    def run(self, items: Iterable[Item | Flush]) -> Iterator[Outcome]:
        """Summarize everything, a window at a time (a FLUSH in ``items`` ends one early)."""
        closes = (lambda item: isinstance(item, BadRecord)) if self.close_on_bad else (lambda _: False)
        offset = 0
        for window in windows(items, self.batch.sort_window, closes):
            yield from self._window(window, offset, finish=window.live)
            offset += len(window)

    def _window(self, window: Sequence[Item], offset: int, finish: bool = False) -> Iterator[Outcome]:
        """The window's records in batches, then (``--long chunk``) rounds of joined piece summaries until each
        long record is short enough; outcomes released as soon as those before them are out."""
        state = Pass(window, offset, InOrder(len(window)))
        bad = [
            Outcome(offset + p, item, error=item.error) for p, item in enumerate(window) if isinstance(item, BadRecord)
        ]
        if not self.batch.unordered:  # in order, a bad record waits for those before it anyway
            state.put(bad)
        records = [(p, item) for p, item in enumerate(window) if isinstance(item, Record)]
        rows = self._rows([p for p, _ in records], [record.dialogue for _, record in records], state.pending)
        while rows:  # the records, then rounds of joined piece summaries that are still too long
            rows = yield from self._round(state, rows, finish)
        if self.batch.unordered:  # after every good record of the window, so --on-error fail loses none
            state.put(bad)
        yield from self._release(state.results)

    def _round(self, state: Pass, rows: list[Row], finish: bool) -> Generator[Outcome, None, list[Row]]:
        """Generate ``rows`` in batches, yielding the outcomes they release; returns the rows of the next round
        (joined piece summaries still too long). Raises Interrupted once a stop ended the round early."""
        later: list[Row] = []
        lengths = [len(row.ids) for row in rows]
        plan = spread(plan_batches(lengths, self.batch.batch_tokens, self.batch.max_batch_size), self.lanes)
        finished = 0
        for index, generated in self._generated([[rows[b].ids for b in batch] for batch in plan], finish):
            for row, result in zip([rows[b] for b in plan[index]], generated):
                outcome = self._settle(row, result, state, later)
                if outcome is not None:
                    state.results.put(row.place, outcome)
            self.counts.real_tokens += sum(lengths[b] for b in plan[index])
            self.counts.padded_tokens += padded_size(lengths, plan[index])
            finished = index + 1
            trim_heap()
            yield from self._release(state.results)
        if finished < len(plan):  # a stop was asked for between batches
            yield from (o for o in state.results.rest() if o.error is None)  # bad ones are judged on resume
            raise Interrupted()
        return later

    def _release(self, results: InOrder[Outcome]) -> Iterator[Outcome]:
        """The outcomes that can go now: those finished before any gap, or (``unordered``) all finished."""
        return results.rest() if self.batch.unordered else results.ready()

    def _rows(self, places: list[int], texts: list[str], pending: dict[int, Long]) -> list[Row]:
        """One row per record, or under ``--long chunk`` one per piece of a record longer than the model."""
        rows = []
        for place, text, source in zip(places, texts, self.backend.encode(texts)):
            if source.truncated and self.long.mode == "chunk":
                rows.extend(self._piece_rows(place, text, pending, Long()))
            else:
                rows.append(Row(place, source.ids, truncated=source.truncated))
        return rows

    def _piece_rows(self, place: int, text: str, pending: dict[int, Long], tally: Long) -> list[Row]:
        """Rows for the pieces of ``text`` (one when it fits), with the record's tally opened for them."""
        found = self._pieces(text)
        pending[place] = Long(
            expected=len(found),
            chunks=tally.chunks or len(found),
            tokens=tally.tokens,
            round=tally.round + bool(tally.chunks),
        )
        return [Row(place, encoded.ids, piece=i) for i, encoded in enumerate(found)]

    def _pieces(self, text: str) -> list[Encoded]:
        """A text in pieces that fit the model, encoded; where the joins cost tokens the counts did not show,
        it is divided again on a smaller budget."""
        budget = self.backend.max_source_length
        while True:
            found = self.backend.encode(dialogue_pieces(text, self._count, budget, self.long.overlap))
            if not any(e.truncated for e in found) or budget <= MIN_BUDGET:
                return found
            budget = budget * 3 // 4

    def _settle(self, row: Row, result: Result, state: Pass, later: list[Row]) -> Outcome | None:
        """The outcome a generated row completes, if any. A long record's piece summaries are gathered; once
        all are in, joined text still longer than the target goes back into ``later`` for another round."""
        record, position, pending = state.items[row.place], state.offset + row.place, state.pending
        tally = pending.get(row.place) if row.piece is not None else None
        if tally is not None and tally.failed:
            return None  # a piece of this record already failed it
        if isinstance(result, Failed):
            if tally is not None:
                tally.failed = True
            return Outcome(position, record, error=InputError(record.source, record.line, result.reason))  # type: ignore
        if tally is None:
            return Outcome(position, record, result.text, truncated=row.truncated, tokens=result.tokens)
        tally.summaries[row.piece] = result.text  # type: ignore[index]
        tally.tokens += result.tokens
        if len(tally.summaries) < tally.expected:
            return None
        joined = "\n".join(tally.summaries[i] for i in range(tally.expected))
        if tally.expected > 1 and tally.round < MAX_ROUNDS and self._count([joined])[0] > self.long.target:
            later.extend(self._piece_rows(row.place, joined, pending, tally))
            return None
        del pending[row.place]
        return Outcome(position, record, joined, tokens=tally.tokens, chunks=tally.chunks)

    def _count(self, texts: Sequence[str]) -> list[int]:
        """Source tokens of each text; one more than the limit for a text the model would truncate."""
        limit = self.backend.max_source_length
        return [limit + 1 if e.truncated else len(e.ids) for e in self.backend.encode(list(texts))]

    def _generated(self, batches: list[list[list[int]]], finish: bool) -> Iterator[tuple[int, list[Result]]]:
        """(index, generated rows) of each batch in order, stopping early (between batches) when a stop is asked
        for, unless ``finish``. A backend with ``concurrent_batches`` > 1 gets that many batches at a time, each
        ``generate`` call in a thread of its own (CTranslate2 runs them side by side, one core each), topped up
        before the caller gets a finished one; a batch already started is always finished."""
        stop = (lambda: False) if finish else self.should_stop
        if self.lanes == 1:  # on the calling thread: a second Ctrl-C interrupts generate() itself
            for index, rows in enumerate(batches):
                if stop():
                    return
                timed = self._timed(rows)
                self._collect(timed)
                yield index, timed.generated
            return
        yield from self._side_by_side(batches, stop)

    def _side_by_side(
        self, batches: list[list[list[int]]], stop: Callable[[], bool]
    ) -> Iterator[tuple[int, list[Result]]]:
        """``_generated`` over ``lanes`` threads: the next batches are started before a finished one is handed on."""
        with ThreadPoolExecutor(self.lanes, thread_name_prefix="generate") as pool:
            flight: deque[Future[Timed]] = deque()
            submitted, busy_until = 0, 0.0

            def top_up() -> None:
                nonlocal submitted
                while len(flight) < self.lanes and submitted < len(batches) and not stop():
                    flight.append(pool.submit(self._timed, batches[submitted]))
                    submitted += 1

            top_up()
            for index in range(len(batches)):
                if not flight:
                    return
                timed = flight.popleft().result()
                busy_until = self._collect(timed, busy_until)
                top_up()  # before the caller writes this batch's outcomes, so that no lane idles meanwhile
                yield index, timed.generated

    def _timed(self, rows: list[list[int]]) -> Timed:
        """``_generate`` with when it began and ended (on the thread that ran it)."""
        began = time.perf_counter()
        generated, splits = self._generate(rows)
        return Timed(generated, splits, began, time.perf_counter())

    def _collect(self, timed: Timed, busy_until: float = 0.0) -> float:
        """Count a finished batch; generation time counts once where batches overlapped (they began in order, so
        only the part after ``busy_until``, the latest end so far, is new). Returns the new latest end."""
        self.counts.generate_seconds += max(0.0, timed.ended - max(timed.began, busy_until))
        self.counts.batches += 1
        self.counts.oom_splits += timed.splits
        return max(busy_until, timed.ended)

    def _generate(self, rows: list[list[int]]) -> tuple[list[Result], int]:
        """Generate, splitting the batch in two on out-of-memory until single rows remain; with the splits made."""
        try:
            return self.backend.generate(rows), 0
        except OutOfMemory:
            if len(rows) == 1:
                return [Failed(f"out of memory even alone ({len(rows[0])} source tokens)")], 0
        self.log(f"out of memory on a batch of {len(rows)} x {max(map(len, rows))} tokens; splitting it")
        (first, left), (second, right) = self._generate(rows[: len(rows) // 2]), self._generate(rows[len(rows) // 2 :])
        return first + second, 1 + left + right
