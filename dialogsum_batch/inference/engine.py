"""The batch engine: windows of records, longest-first token-budget batches, results in input order."""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import rouge
from ..backends import Backend, Encoded, Generated, OutOfMemory
from .batching import Cut, InOrder, padded_size, plan_batches, windows
from ..config import RunSettings
from ..errors import InputError
from .records import BadRecord, Item, Record

Emit = Callable[[dict[str, Any]], None]
OUTPUT_FIELDS = frozenset({"id", "summary", "reference", "rouge", "truncated"})  # never taken from --keep-fields


class Interrupted(Exception):
    """A stop was asked for (SIGINT / SIGTERM); finished results were written first."""


class RunningMean:
    """Mean ROUGE of the records scored so far, in constant memory however long the stream.

    Same ``add`` / ``n`` / ``mean`` as ``rouge.RougeAccumulator``, which keeps every record's
    scores (for bootstrap intervals) and so grows with the input.
    """

    def __init__(self) -> None:
        self.n = 0
        self.sums = dict.fromkeys(rouge.ROUGE_TYPES, 0.0)

    def add(self, scores: dict[str, float]) -> None:
        missing = [t for t in rouge.ROUGE_TYPES if t not in scores]
        if missing:
            raise ValueError(f"ROUGE scores lack {', '.join(missing)}")
        for key in self.sums:
            self.sums[key] += float(scores[key])
        self.n += 1

    def mean(self) -> dict[str, float]:
        return {key: total / self.n for key, total in self.sums.items()} if self.n else {}


@dataclass
class Stats:
    """What a run did, for the stderr summary and the metrics file."""

    records: int = 0  # summaries written
    errors: int = 0  # bad records reported
    truncated: int = 0
    resumed: int = 0  # already in the output file, skipped
    other_shards: int = 0  # left to other shards
    batches: int = 0
    oom_splits: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0
    generated_tokens: int = 0
    generate_seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    scores: RunningMean = field(default_factory=RunningMean)

    def report(self) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.started
        result: dict[str, Any] = {
            "records": self.records, "errors": self.errors, "truncated": self.truncated,
            "resumed": self.resumed, "other_shards": self.other_shards, "batches": self.batches,
            "oom_splits": self.oom_splits, "seconds": round(elapsed, 3),
            "generate_seconds": round(self.generate_seconds, 3),
            "dialogues_per_second": round(self.records / elapsed, 3) if elapsed > 0 else 0.0,
            "generated_tokens": self.generated_tokens,
            "padding_efficiency": round(self.real_tokens / self.padded_tokens, 4) if self.padded_tokens else None,
        }
        if self.scores.n:
            result["rouge"] = {key: round(value, 4) for key, value in self.scores.mean().items()}
            result["rouge_records"] = self.scores.n
        return result


# ---------------------------------------------------------------------------- filters


def shard_of(key: str, count: int) -> int:
    """A stable shard number in 1..count for a record key (the same on every host and Python)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count + 1


def item_key(item: Item) -> str:
    if isinstance(item, Record):
        return item.id
    return f"{item.error.source}:{item.error.line}"


def select(items: Iterable[Item | Cut], stats: Stats, done: Mapping[str, int] | None = None,
           shard: tuple[int, int] | None = None) -> Iterator[Item | Cut]:
    """Drop records already in the output (resume) and those of other shards, counting both.

    ``done`` counts each id written so far: a repeated id is skipped only as often as it was
    written, so duplicates in the input are each summarized once. A CUT (a stalled input) passes through.
    """
    pending = Counter(done or {})
    for item in items:
        if isinstance(item, Cut):
            yield item
        elif shard and shard_of(item_key(item), shard[1]) != shard[0]:
            stats.other_shards += 1
        elif isinstance(item, Record) and pending[item.id] > 0:
            pending[item.id] -= 1
            stats.resumed += 1
        else:
            yield item


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
    """Runs a stream of records through a backend and hands each result to ``emit`` in input order."""

    def __init__(self, backend: Backend, settings: RunSettings, emit: Emit,
                 on_bad: Callable[[InputError], None], flush: Callable[[], None] = lambda: None,
                 should_stop: Callable[[], bool] = lambda: False, log: Callable[[str], None] = lambda _: None,
                 progress: Callable[[int], None] = lambda _: None):
        self.backend = backend
        self.settings = settings
        self.emit = emit
        self.on_bad = on_bad
        self.flush = flush
        self.should_stop = should_stop
        self.log = log
        self.progress = progress
        self.stats = Stats()

    def run(self, items: Iterable[Item | Cut]) -> Stats:
        """Summarize everything, a window at a time (a CUT ends one early); an InputError escapes from
        ``on_bad`` when the policy is to fail."""
        closes = (lambda item: isinstance(item, BadRecord)) if self.settings.on_error == "fail" else (lambda _: False)
        for window in windows(items, self.settings.batch.sort_window, closes):
            self._window(window)
        return self.stats

    def _window(self, window: Sequence[Item]) -> None:
        positions = [p for p, item in enumerate(window) if isinstance(item, Record)]
        encoded = self.backend.encode([window[p].dialogue for p in positions])  # type: ignore[union-attr]
        lengths = [len(e.ids) for e in encoded]
        results: InOrder[Any] = InOrder(len(window))
        batch = self.settings.batch
        bad = [(position, item) for position, item in enumerate(window) if isinstance(item, BadRecord)]
        if not batch.unordered:  # in order, a bad record waits for those before it anyway
            self._put_all(results, bad)
        for rows in plan_batches(lengths, batch.batch_tokens, batch.max_batch_size):
            if self.should_stop():
                self._release(results.rest(), interrupted=True)
                raise Interrupted()
            self._batch(rows, [window[positions[r]] for r in rows], [encoded[r] for r in rows], results, positions)
            self._release(results.rest() if batch.unordered else results.ready())
            self.stats.real_tokens += sum(lengths[r] for r in rows)
            self.stats.padded_tokens += padded_size(lengths, rows)
            trim_heap()
        if batch.unordered:  # after every good record of the window, so --on-error fail loses none
            self._put_all(results, bad)
        self._release(results.rest() if batch.unordered else results.ready())

    @staticmethod
    def _put_all(results: InOrder[Any], values: Sequence[tuple[int, Any]]) -> None:
        for position, value in values:
            results.put(position, value)

    def _batch(self, rows: list[int], records: list[Record], encoded: list[Encoded], results: InOrder,
               positions: list[int]) -> None:
        started = time.perf_counter()
        outcomes = self._generate([e.ids for e in encoded])
        self.stats.generate_seconds += time.perf_counter() - started
        self.stats.batches += 1
        for row, record, source, outcome in zip(rows, records, encoded, outcomes):
            if isinstance(outcome, Generated):
                value: Any = self._output(record, source, outcome)
            else:
                value = BadRecord(record.index, InputError(record.source, record.line, outcome))
            results.put(positions[row], value)
        self.progress(len(rows))

    def _generate(self, rows: list[list[int]]) -> list[Generated | str]:
        """Generate, splitting the batch in two on out-of-memory until single rows remain."""
        try:
            return self.backend.generate(rows)
        except OutOfMemory:
            if len(rows) == 1:
                return [f"out of memory even alone ({len(rows[0])} source tokens)"]
        self.stats.oom_splits += 1
        self.log(f"out of memory on a batch of {len(rows)} x {max(map(len, rows))} tokens; splitting it")
        middle = len(rows) // 2
        return self._generate(rows[:middle]) + self._generate(rows[middle:])

    def _output(self, record: Record, source: Encoded, generated: Generated) -> dict[str, Any]:
        out: dict[str, Any] = {"id": record.id, "summary": generated.text}
        if record.references:
            out["reference"] = record.references[0] if len(record.references) == 1 else list(record.references)
            out["rouge"] = {k: round(v, 4) for k, v in rouge.score(generated.text, record.references).items()}
            self.stats.scores.add(out["rouge"])
        if source.truncated:
            out["truncated"] = True
            self.stats.truncated += 1
        self.stats.generated_tokens += generated.tokens
        keep = self.settings.keep_fields
        kept = {k: v for k, v in record.extra.items() if ("*" in keep or k in keep) and k not in OUTPUT_FIELDS}
        return {**out, **kept}

    def _release(self, values: Iterable[Any], interrupted: bool = False) -> None:
        try:
            for value in values:
                if isinstance(value, BadRecord):
                    if not interrupted:  # a bad record is read again on resume; no need to judge it now
                        self.stats.errors += 1
                        self.on_bad(value.error)
                else:
                    self.stats.records += 1
                    self.emit(value)
        finally:
            self.flush()
