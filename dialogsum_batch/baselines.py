"""Extractive baselines from the SAMSum paper (Gliwa et al., 2019).

The paper reports LEAD-3 and LONGEST-n baselines (LONGEST-3 the strongest): summaries
made of whole utterances copied from the dialogue. Here:

* a turn (utterance) is one line of the dialogue; lines end in ``\\r\\n``, ``\\n`` or
  ``\\r``, and blank lines are ignored. Each turn is stripped and kept whole,
  speaker name included ("Amanda: I baked cookies."): SAMSum summaries name the
  speakers, and public reimplementations copy the utterance as it stands;
* LEAD-3 takes the first three turns;
* LONGEST-3 takes the three turns with the most words (whitespace-separated tokens,
  speaker name included), as the public ``longest_n`` reimplementation in the
  DialogueSum code counts them; the paper does not say whether it counts words or
  characters. Ties go to the earlier turn, and the chosen turns keep their dialogue
  order, so the extract reads as a conversation;
* a dialogue with fewer than three turns yields all of them, and an empty one "".

The chosen turns are joined with ``\\n``, so rougeLsum scores each turn as a sentence.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def turns(dialogue: str) -> list[str]:
    """The dialogue's non-blank lines, stripped, in order."""
    return [line.strip() for line in _LINE_BREAK.split(dialogue) if line.strip()]


def lead_n(dialogue: str, n: int = 3) -> str:
    """The first ``n`` turns, one per line."""
    return "\n".join(turns(dialogue)[:n])


def longest_n(dialogue: str, n: int = 3) -> str:
    """The ``n`` turns with the most words, earlier first on ties, in dialogue order."""
    lines = turns(dialogue)
    by_length = sorted(range(len(lines)), key=lambda i: (-len(lines[i].split()), i))
    chosen = sorted(by_length[:n])
    return "\n".join(lines[i] for i in chosen)


def lead3(dialogue: str) -> str:
    """LEAD-3: the first three turns, one per line."""
    return lead_n(dialogue, 3)


def longest3(dialogue: str) -> str:
    """LONGEST-3: the three longest turns (in words), one per line, in dialogue order."""
    return longest_n(dialogue, 3)


BASELINES: dict[str, Callable[[str], str]] = {"lead3": lead3, "longest3": longest3}
