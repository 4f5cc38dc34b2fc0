"""Batches side by side: a backend with ``concurrent_batches`` > 1 gets that many ``generate`` calls at once.

CTranslate2 on the CPU runs them on one core each; the engine must keep every other promise as before:
outcomes in input order, memory back-off, a stop between batches that finishes what was started.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
from conftest import FakeBackend

from dialogsum_batch.backends import Generated
from dialogsum_batch.config import BatchSettings
from dialogsum_batch.inference.engine import Engine, Interrupted
from dialogsum_batch.inference.records import Record

SMALL_BATCHES = BatchSettings(batch_tokens=24, max_batch_size=4)  # the records below make 10-odd batches


class SideBySide(FakeBackend):
    """The fake backend taking ``delay`` s a batch, ``lanes`` at a time; records how many ran at once."""

    def __init__(self, lanes: int, delay: float = 0.02, **kwargs):
        super().__init__(**kwargs)
        self.concurrent_batches = lanes
        self.delay = delay
        self.running = 0
        self.most_at_once = 0
        self.started = 0
        self.lock = threading.Lock()

    def generate(self, batch: Sequence[Sequence[int]]) -> list[Generated]:
        with self.lock:
            self.started += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            time.sleep(self.delay)
            return super().generate(batch)
        finally:
            with self.lock:
                self.running -= 1


def records(n: int = 40) -> list[Record]:
    return [Record(i, f"r{i}", f"A{i}: hello\n" + "B: word " * (1 + i % 7), ()) for i in range(n)]


def summaries(engine: Engine, items: list[Record]) -> list[tuple[int, str | None]]:
    return [(o.position, o.summary) for o in engine.run(items)]


@pytest.mark.parametrize("lanes", [2, 3])
def test_side_by_side_batches_give_the_same_outcomes_in_order(lanes):
    one = SideBySide(lanes=1)
    many = SideBySide(lanes=lanes)
    expected = summaries(Engine(one, SMALL_BATCHES), records())
    engine = Engine(many, SMALL_BATCHES)
    assert summaries(engine, records()) == expected
    assert [p for p, _ in expected] == list(range(40)) and all(s == f"A{p}: hello" for p, s in expected)
    assert one.most_at_once == 1 and many.most_at_once == lanes  # never more than the backend asked for
    assert engine.counts.batches == len(one.batches) == len(many.batches) > lanes
    assert engine.counts.real_tokens == sum(len(many.encode([r.dialogue])[0].ids) for r in records())


def test_side_by_side_generation_time_counts_overlap_once():
    backend = SideBySide(lanes=2, delay=0.05)
    engine = Engine(backend, SMALL_BATCHES)
    started = time.perf_counter()
    list(engine.run(records()))
    wall = time.perf_counter() - started
    assert engine.counts.generate_seconds <= wall  # two batches at once are not twice the time
    assert engine.counts.generate_seconds >= 0.05 * engine.counts.batches / 2 * 0.9


def test_side_by_side_batches_split_on_out_of_memory():
    backend = SideBySide(lanes=2, oom_above=2)
    engine = Engine(backend, SMALL_BATCHES)
    outcomes = list(engine.run(records()))
    assert [o.summary for o in outcomes] == [f"A{i}: hello" for i in range(40)]
    assert engine.counts.oom_splits > 0 and max(backend.batches) <= 2


def test_a_stop_finishes_the_batches_already_started_and_loses_none():
    backend = SideBySide(lanes=2, delay=0.05)
    asked = iter([False, False])  # two batches may start; the third look says stop
    engine = Engine(backend, SMALL_BATCHES, should_stop=lambda: next(asked, True))
    seen = []
    with pytest.raises(Interrupted):
        seen.extend(engine.run(records()))
    assert backend.started == engine.counts.batches == 2  # both in flight were finished, nothing new begun
    assert sorted(o.position for o in seen) == [o.position for o in seen]
    assert len(seen) == sum(backend.batches)  # every summary made was handed out


def test_a_window_of_one_batch_is_spread_over_the_lanes():
    """Live input sends a few records at a time: one batch would leave every lane but one idle."""
    backend = SideBySide(lanes=2, delay=0.05)
    few = records(6)
    outcomes = list(Engine(backend, BatchSettings()).run(few))
    assert [o.summary for o in outcomes] == [f"A{i}: hello" for i in range(6)]
    assert sorted(backend.batches) == [3, 3] and backend.most_at_once == 2
    single = SideBySide(lanes=1)
    list(Engine(single, BatchSettings()).run(few))
    assert single.batches == [6]  # one lane: the plan as it was


def test_generation_time_leaves_out_what_the_caller_does_between_outcomes():
    backend = SideBySide(lanes=2, delay=0.005)
    engine = Engine(backend, SMALL_BATCHES)
    for _ in engine.run(records()):
        time.sleep(0.02)  # writing, scoring, a slow pipe: not generation
    assert engine.counts.batches > 10
    assert engine.counts.generate_seconds < 0.005 * engine.counts.batches + 0.2  # at most every batch end to end
