"""What every backend shares, without importing torch: source encoding, output cleanup, CPU cores."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from . import Encoded

DEFAULT_SOURCE_LIMIT = 1024
CHARS_PER_TOKEN_CAP = 32  # cut absurdly long inputs before tokenizing them whole
ENCODE_CHUNK = 256  # texts per tokenizer call
GENERATION_KEYS = ("num_beams", "max_new_tokens", "max_length", "min_length", "length_penalty", "no_repeat_ngram_size")


def encode_texts(tokenizer: Any, texts: Sequence[str], limit: int) -> list[Encoded]:
    """Token ids per text, cut to ``limit`` (keeping the final </s>) and flagged when cut.

    The fast tokenizer runs over slices of ENCODE_CHUNK texts: as quick as one call for the
    whole window, but its per-token bookkeeping (offsets, token strings) never exists for
    more than a slice at once (a 2,048-record window: 13 MiB at peak instead of 60).

    Texts are stripped first: SentencePiece drops leading and trailing whitespace, but the fast
    Pegasus tokenizer turns a trailing space or line break into an extra ``▁`` token.
    """
    eos = tokenizer.eos_token_id
    encoded: list[Encoded] = []
    for start in range(0, len(texts), ENCODE_CHUNK):
        capped = [text.strip()[: limit * CHARS_PER_TOKEN_CAP] for text in texts[start:start + ENCODE_CHUNK]]
        rows = tokenizer(capped, truncation=True, max_length=limit + 1, return_attention_mask=False)
        encoded.extend(cut(ids, limit, eos) for ids in rows["input_ids"])
    return encoded


def cut(ids: list[int], limit: int, eos: int | None) -> Encoded:
    """Ids tokenized to ``limit + 1`` are longer than the limit: cut them, ending on </s>."""
    if len(ids) <= limit:
        return Encoded(ids, False)
    tail = [eos] if eos is not None else []
    return Encoded(ids[: limit - len(tail)] + tail, True)


def generation_summary(generation: Any) -> dict[str, Any]:
    """The decoding settings worth reporting, from a GenerationConfig."""
    return {key: getattr(generation, key, None) for key in GENERATION_KEYS}


def clean(text: str) -> str:
    """Pegasus-cnn_dailymail writes <n> between sentences: make it a line break."""
    return "\n".join(part.strip() for part in text.split("<n>")).strip()


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
