"""LEAD-3 / LONGEST-3 on small dialogues checked by hand."""

from __future__ import annotations

from dialogsum_batch.baselines import BASELINES, lead3, longest3, turns

DIALOGUE = "\r\n".join(
    [
        "Amanda: Hi!",  # 2 words
        "Jerry: Hey, what's up?",  # 4 words
        "Amanda: I baked cookies. Do you want some?",  # 8 words
        "Jerry: Sure!",  # 2 words
        "Amanda: I'll bring you some tomorrow after work then :-)",  # 10 words
        "Jerry: Great, thanks a lot, see you then",  # 8 words
    ]
)


def test_turns_split_crlf_lf_and_skip_blank_lines():
    text = "A: one\r\n\r\nB: two\n   \nC: three\rD: four\n"
    assert turns(text) == ["A: one", "B: two", "C: three", "D: four"]


def test_lead3_takes_first_three_turns_one_per_line():
    assert lead3(DIALOGUE) == "Amanda: Hi!\nJerry: Hey, what's up?\nAmanda: I baked cookies. Do you want some?"


def test_longest3_keeps_dialogue_order_and_breaks_ties_by_position():
    # 10 words is longest; turns 3 and 6 tie at 8 words and both fit; order is the dialogue's.
    assert longest3(DIALOGUE) == "\n".join(
        [
            "Amanda: I baked cookies. Do you want some?",
            "Amanda: I'll bring you some tomorrow after work then :-)",
            "Jerry: Great, thanks a lot, see you then",
        ]
    )


def test_longest3_tie_for_the_last_place_goes_to_the_earlier_turn():
    dialogue = "A: a b c d\nB: e f\nC: g h\nD: i j k l m\nE: n o"
    # 5 and 6 words are clear; B, C and E tie at 3 words: B, the earliest, wins.
    assert longest3(dialogue) == "A: a b c d\nB: e f\nD: i j k l m"


def test_longest3_counts_words_not_characters():
    dialogue = "A: supercalifragilisticexpialidocious\nB: a b c\nC: d e f\nD: g h i"
    assert longest3(dialogue) == "B: a b c\nC: d e f\nD: g h i"


def test_fewer_than_three_turns_returns_all_of_them():
    assert lead3("A: hi\r\nB: hello there") == "A: hi\nB: hello there"
    assert longest3("A: hi\r\nB: hello there") == "A: hi\nB: hello there"
    assert lead3("  A: alone  ") == "A: alone"
    assert lead3("") == longest3("\r\n\r\n") == ""


def test_registry_names_both_baselines():
    assert BASELINES == {"lead3": lead3, "longest3": longest3}
