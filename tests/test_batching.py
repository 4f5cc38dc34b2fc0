"""Unit tests for inference/batching.py: windows, token-budget batch plans and the in-order release."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialogsum_batch.inference.batching import FLUSH, InOrder, batch_ends, padded_size, plan_batches, spread, windows

# ---------------------------------------------------------------------------- helpers


def greedy_plan(lengths: list[int], batch_tokens: int, max_batch_size: int) -> list[list[int]]:
    """The plan the DP replaced: longest first, each batch filled until the next row would not fit."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    for position in order:
        if batches:
            batch = batches[-1]
            rows = len(batch) + 1
            if rows <= max_batch_size and lengths[batch[0]] * rows <= batch_tokens:
                batch.append(position)
                continue
        batches.append([position])
    return batches


def area(lengths: list[int], plan: list[list[int]]) -> int:
    return sum(padded_size(lengths, batch) for batch in plan)


def check_plan(lengths: list[int], plan: list[list[int]], batch_tokens: int, max_batch_size: int) -> None:
    flat = [position for batch in plan for position in batch]
    assert sorted(flat) == list(range(len(lengths))), "every position exactly once"
    assert flat == sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)), "longest first, ties by input order"
    for batch in plan:
        assert batch, "no empty batch"
        assert len(batch) <= max_batch_size
        if len(batch) > 1:
            assert padded_size(lengths, batch) <= batch_tokens


def stalls_after(*items):
    """A stream that fails the test if it is read past its last item (a stalled producer)."""
    yield from items
    raise AssertionError("windows() read past a FLUSH instead of handing over the window")


# ---------------------------------------------------------------------------- windows


@pytest.mark.parametrize(
    "size, expected",
    [
        (3, [[0, 1, 2], [3, 4, 5], [6]]),
        (7, [[0, 1, 2, 3, 4, 5, 6]]),
        (1, [[0], [1], [2], [3], [4], [5], [6]]),
        (100, [[0, 1, 2, 3, 4, 5, 6]]),
    ],
)
def test_windows_chunk_to_size(size, expected):
    assert list(windows(range(7), size)) == expected


def test_windows_of_nothing_are_none():
    assert list(windows([], 4)) == []


def test_windows_closes_ends_the_window_at_that_item():
    assert list(windows(range(8), 3, closes=lambda item: item in (1, 5))) == [[0, 1], [2, 3, 4], [5], [6, 7]]


@pytest.mark.parametrize(
    "items, size, expected",
    [
        ([1, FLUSH, 2, 3], 5, [[1], [2, 3]]),
        ([FLUSH, 1, 2], 5, [[1, 2]]),  # nothing read yet: the FLUSH flushes nothing
        ([1, FLUSH, FLUSH, FLUSH, 2], 5, [[1], [2]]),  # repeated stalls: no empty windows
        ([1, 2, FLUSH, 3], 2, [[1, 2], [3]]),  # a FLUSH right after a full window flushes nothing more
        ([1, 2, 3, FLUSH], 2, [[1, 2], [3]]),
        ([FLUSH, FLUSH], 5, []),
    ],
)
def test_windows_flush_ends_the_window_read_so_far(items, size, expected):
    assert list(windows(items, size)) == expected


def test_windows_flush_is_never_an_item():
    got = list(windows([FLUSH, "a", FLUSH, "b", "c", FLUSH], 10))
    assert got == [["a"], ["b", "c"]]
    assert all(item is not FLUSH for window in got for item in window)


def test_windows_hand_over_a_window_at_a_flush_without_reading_further():
    stream = windows(stalls_after("a", "b", FLUSH), 10)
    assert next(stream) == ["a", "b"]


def test_windows_hand_over_a_closing_item_without_reading_further():
    stream = windows(stalls_after("a", "end"), 10, closes=lambda item: item == "end")
    assert next(stream) == ["a", "end"]


@pytest.mark.property
@given(st.lists(st.one_of(st.integers(0, 9), st.just(FLUSH)), max_size=60), st.integers(1, 8))
def test_windows_keep_every_item_in_order_within_size(items, size):
    got = list(windows(items, size, closes=lambda item: item == 0))
    assert [item for window in got for item in window] == [item for item in items if item is not FLUSH]
    assert all(0 < len(window) <= size for window in got)
    assert all(0 not in window[:-1] for window in got), "a closing item is always last in its window"


# ---------------------------------------------------------------------------- plan_batches / batch_ends


def test_plan_batches_of_nothing_is_empty():
    assert plan_batches([], 100, 8) == []


def test_plan_batches_sort_longest_first_ties_by_position():
    plan = plan_batches([5, 9, 5, 9, 1], batch_tokens=1000, max_batch_size=10)
    assert [p for batch in plan for p in batch] == [1, 3, 0, 2, 4]


@pytest.mark.parametrize(
    "lengths, batch_tokens, max_batch_size",
    [
        ([10] * 20, 40, 100),  # budget binds: 4 rows of 10
        ([10] * 20, 10_000, 3),  # row cap binds
        ([50, 40, 30, 20, 10, 5, 5, 5], 100, 8),
        ([7, 300, 2, 64, 64, 1, 128, 9, 33], 256, 4),
    ],
)
def test_plan_batches_respect_budget_and_row_cap(lengths, batch_tokens, max_batch_size):
    plan = plan_batches(lengths, batch_tokens, max_batch_size)
    check_plan(lengths, plan, batch_tokens, max_batch_size)


def test_plan_batches_give_a_row_over_the_budget_a_batch_of_its_own():
    lengths = [500, 10, 400, 10]
    plan = plan_batches(lengths, batch_tokens=100, max_batch_size=8)
    assert plan == [[0], [2], [1, 3]]


def test_plan_batches_cap_rows_exactly_at_max_batch_size():
    plan = plan_batches([1] * 10, batch_tokens=1000, max_batch_size=4, batch_cost=1000)
    assert [len(batch) for batch in plan] == [4, 4, 2]


def test_plan_batches_fill_to_the_budget_exactly():
    plan = plan_batches([25] * 8, batch_tokens=100, max_batch_size=8, batch_cost=1000)
    assert [len(batch) for batch in plan] == [4, 4]


def test_plan_batches_keep_a_long_row_off_the_head_of_short_ones():
    # Greedy filling puts the 100-token row at the head of one 10-token row: 90 tokens of padding.
    lengths = [100] + [10] * 9
    greedy = greedy_plan(lengths, 200, 16)
    plan = plan_batches(lengths, batch_tokens=200, max_batch_size=16)
    assert area(lengths, greedy) - sum(lengths) == 90
    assert plan == [[0], list(range(1, 10))]
    assert area(lengths, plan) == sum(lengths)


def test_plan_batches_pad_less_than_greedy_on_a_length_spread():
    lengths = [(i * 37) % 200 + 5 for i in range(300)]
    plan = plan_batches(lengths, batch_tokens=1024, max_batch_size=32)
    greedy = greedy_plan(lengths, 1024, 32)
    check_plan(lengths, plan, 1024, 32)
    assert area(lengths, plan) < area(lengths, greedy)


def test_plan_batches_trade_batches_for_padding_by_batch_cost():
    lengths = [20, 10, 10, 10]
    cheap = plan_batches(lengths, batch_tokens=200, max_batch_size=8, batch_cost=1)
    dear = plan_batches(lengths, batch_tokens=200, max_batch_size=8, batch_cost=1000)
    assert cheap == [[0], [1, 2, 3]]  # 20 + 30 padded tokens + 2 batches
    assert dear == [[0, 1, 2, 3]]  # 80 padded tokens, one batch


@pytest.mark.parametrize(
    "longest_first, expected",
    [
        ([], []),
        ([5], [1]),
        ([9, 9, 9], [2, 3]),
        ([300, 10, 10], [1, 3]),
    ],
)
def test_batch_ends_end_positions(longest_first, expected):
    assert batch_ends(longest_first, batch_tokens=20, max_batch_size=8, batch_cost=1000) == expected


@pytest.mark.property
@given(
    st.lists(st.integers(0, 600), max_size=80),
    st.integers(1, 2048),
    st.integers(1, 40),
    st.one_of(st.none(), st.integers(0, 500)),
)
def test_plan_batches_property(lengths, batch_tokens, max_batch_size, batch_cost):
    plan = plan_batches(lengths, batch_tokens, max_batch_size, batch_cost)
    check_plan(lengths, plan, batch_tokens, max_batch_size)
    # Greedy uses the fewest batches, so a plan minimising padding + cost x batches never pads more.
    assert area(lengths, plan) <= area(lengths, greedy_plan(lengths, batch_tokens, max_batch_size))


# ---------------------------------------------------------------------------- padded_size


@pytest.mark.parametrize("batch, expected", [([0], 3), ([0, 1], 14), ([1, 2, 0], 21), ([2], 5)])
def test_padded_size_is_rows_times_longest(batch, expected):
    assert padded_size([3, 7, 5], batch) == expected


# ---------------------------------------------------------------------------- InOrder


def test_in_order_ready_releases_up_to_the_first_gap():
    order = InOrder(5)
    order.put(1, "b")
    assert list(order.ready()) == []
    order.put(0, "a")
    order.put(3, "d")
    assert list(order.ready()) == ["a", "b"]
    order.put(2, "c")
    assert list(order.ready()) == ["c", "d"]
    assert list(order.ready()) == []
    order.put(4, "e")
    assert list(order.ready()) == ["e"]


def test_in_order_rest_releases_everything_filled_once():
    order = InOrder(6)
    for position, value in [(1, "b"), (3, "d"), (5, "f")]:
        order.put(position, value)
    assert list(order.rest()) == ["b", "d", "f"]
    assert list(order.rest()) == []
    assert list(order.ready()) == []


def test_in_order_releases_nothing_twice_across_rest_and_ready():
    order = InOrder(4)
    order.put(0, "a")
    assert list(order.ready()) == ["a"]
    order.put(2, "c")
    assert list(order.rest()) == ["c"]
    order.put(1, "b")
    order.put(3, "d")
    assert list(order.ready()) == ["b", "d"]
    assert list(order.rest()) == []


def test_in_order_releases_falsy_values():
    order = InOrder(3)
    for position, value in enumerate([None, 0, ""]):
        order.put(position, value)
    assert list(order.ready()) == [None, 0, ""]


def test_in_order_frees_slots_once_released():
    order = InOrder(3)
    order.put(0, ["big"])
    order.put(2, ["bigger"])
    assert list(order.ready()) == [["big"]]
    assert order.slots == [None, None, ["bigger"]]
    assert list(order.rest()) == [["bigger"]]
    assert order.slots == [None, None, None]


@pytest.mark.property
@given(st.data(), st.integers(0, 30))
def test_in_order_releases_each_value_once_and_ready_in_order(data, size):
    order = InOrder(size)
    released: list[int] = []
    in_order: list[int] = []  # what ready() gave, in the order it gave it
    for position in data.draw(st.permutations(range(size))):
        order.put(position, position)
        got = list(order.ready())
        in_order += got
        released += got
        if data.draw(st.integers(0, 9), label="rest now?") == 0:
            released += list(order.rest())
    released += list(order.rest())
    assert sorted(released) == list(range(size)), "each value released exactly once"
    assert in_order == sorted(in_order)
    assert order.slots == [None] * size


# ---------------------------------------------------------------------------- spread


@pytest.mark.parametrize(
    ("plan", "lanes", "expected"),
    [
        ([[0, 1, 2, 3]], 2, [[0, 1], [2, 3]]),
        ([[0, 1, 2]], 2, [[0], [1, 2]]),
        ([[0, 1, 2, 3]], 3, [[0], [1], [2, 3]]),
        ([[0, 1], [2, 3, 4, 5]], 3, [[0, 1], [2, 3], [4, 5]]),
        ([[0], [1]], 4, [[0], [1]]),  # single rows are not split further
        ([[0, 1], [2]], 1, [[0, 1], [2]]),
        ([], 2, []),
    ],
)
def test_spread_halves_the_largest_batches_until_every_lane_has_one(plan, lanes, expected):
    assert spread(plan, lanes) == expected


@given(st.lists(st.lists(st.integers(0, 99), min_size=1, max_size=9), max_size=5), st.integers(1, 8))
def test_spread_keeps_every_row_once_in_order(plan, lanes):
    spread_plan = spread(plan, lanes)
    assert [row for batch in spread_plan for row in batch] == [row for batch in plan for row in batch]
    assert all(spread_plan) and len(spread_plan) >= min(lanes, sum(map(len, plan)))
