"""Chats longer than the model (``--long chunk``): divided at turn boundaries into pieces that fit.

A dialogue is a list of turns, one a line. Pieces are runs of whole turns whose tokens fit the model's
source limit, each starting ``overlap`` turns before the previous one ended, so a reply keeps the turn it
answers. A turn longer than the limit is divided at sentence ends, a sentence at spaces, a word (a pasted
blob) into runs of characters. The engine summarizes the pieces in its ordinary batches, joins their
summaries in order, and summarizes the joined text again while it is longer than a target.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Count = Callable[[Sequence[str]], list[int]]  # token counts of texts (more than the limit: limit + 1)

SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
BYTES_PER_CHAR = 4  # a byte-fallback tokenizer spends up to one token per UTF-8 byte of a character


@dataclass(frozen=True)
class Unit:
    """A turn, or a part of one too long to fit: its text, its tokens and what joins it to the unit before."""

    text: str
    tokens: int
    glue: str = "\n"  # "\n" starts a turn; " " goes on with the turn before


def turns(dialogue: str) -> list[str]:
    """The dialogue's turns: its non-blank lines."""
    return [line for line in dialogue.split("\n") if line.strip()]


def units(dialogue: str, count: Count, budget: int) -> list[Unit]:
    """The dialogue's turns as units of at most ``budget`` tokens, longer turns divided into parts that fit."""
    lines = turns(dialogue)
    result: list[Unit] = []
    for line, tokens in zip(lines, count(lines)):
        if tokens <= budget:
            result.append(Unit(line, tokens))
        else:
            first, *rest = fitting_parts(line, count, budget)
            result += [Unit(first.text, first.tokens), *rest]  # the first part starts the turn
    return result


def fitting_parts(text: str, count: Count, budget: int, level: int = 0) -> list[Unit]:
    """``text`` divided into parts of at most ``budget`` tokens: at sentence ends, then spaces, then characters;
    each part's ``glue`` is what joined it to the part before."""
    if level == 2:
        return character_runs(text, count, budget)
    parts = [part for part in (SENTENCE_END.split(text) if level == 0 else text.split(" ")) if part.strip()]
    fitted: list[Unit] = []
    for part, tokens in zip(parts, count(parts)):
        fitted += [Unit(part, tokens, " ")] if tokens <= budget else fitting_parts(part, count, budget, level + 1)
    return pack(fitted, budget)


def character_runs(word: str, count: Count, budget: int) -> list[Unit]:
    """A word longer than the budget (a pasted blob) in runs of characters that fit, whatever the tokenizer."""
    size = max(1, budget // BYTES_PER_CHAR)
    runs = [word[start : start + size] for start in range(0, len(word), size)]
    return [Unit(run, tokens, " " if i == 0 else "") for i, (run, tokens) in enumerate(zip(runs, count(runs)))]


def pack(parts: list[Unit], budget: int) -> list[Unit]:
    """Neighbouring parts joined again while they fit, so a long turn is not divided finer than it must be."""
    packed: list[Unit] = []
    for part in parts:
        if packed and packed[-1].tokens + part.tokens <= budget:
            last = packed[-1]
            packed[-1] = Unit(last.text + part.glue + part.text, last.tokens + part.tokens, last.glue)
        else:
            packed.append(part)
    return packed


def pieces(found: Sequence[Unit], budget: int, overlap: int = 0) -> list[tuple[int, int]]:
    """(start, end) runs of units, each within ``budget`` tokens, in order, covering every unit; each run
    starts ``overlap`` units before the previous one ended (fewer where the budget would not allow it)."""
    runs: list[tuple[int, int]] = []
    start = 0
    while start < len(found):
        end, total = start, 0
        while end < len(found) and (end == start or total + found[end].tokens <= budget):
            total += found[end].tokens
            end += 1
        runs.append((start, end))
        if end == len(found):
            break
        start = max(end - overlap, start + 1)
        while start < end and sum(u.tokens for u in found[start : end + 1]) > budget:  # room for one new unit
            start += 1
    return runs


def piece_text(found: Sequence[Unit], start: int, end: int) -> str:
    """The text of a run of units, each joined to the one before as it was in the dialogue."""
    text = found[start].text
    for unit in found[start + 1 : end]:
        text += unit.glue + unit.text
    return text


def dialogue_pieces(dialogue: str, count: Count, budget: int, overlap: int = 0) -> list[str]:
    """The dialogue in pieces of at most ``budget`` tokens (as ``count`` counts them), in dialogue order."""
    found = units(dialogue, count, budget)
    return [piece_text(found, start, end) for start, end in pieces(found, budget, overlap)]
