"""ROUGE exactly as Hugging Face's run_summarization.py reports it, without the Hub.

``evaluate.load("rouge")`` fetches a metric script and so fails offline; it is a thin
wrapper around ``rouge_score``, which this module calls the same way:
``RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)``,
``score(reference, prediction)`` (reference first), the F-measure times 100, and for
several references the best F per ROUGE type (``score_multi``).

Text is prepared as run_summarization's ``postprocess_text`` does: stripped, then one
sentence per line so that rougeLsum sees sentence boundaries. Pegasus-cnn_dailymail
writes ``<n>`` for a sentence break; it becomes a newline first, or it would score as
the word "n". Sentences are split with nltk's punkt when its data is installed (never
downloaded). Otherwise a regex splitter stands in: it breaks after ``.``, ``!`` or
``?`` followed by whitespace, and at newlines. ``SPLITTER`` names the one in use; only
rougeLsum can differ between the two.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from rouge_score.scoring import Score

ROUGE_LABELS: dict[str, str] = {
    "rouge1": "ROUGE-1",
    "rouge2": "ROUGE-2",
    "rougeL": "ROUGE-L",
    "rougeLsum": "ROUGE-Lsum",
}
ROUGE_TYPES: tuple[str, ...] = tuple(ROUGE_LABELS)  # rouge_score's names, in the order every table shows them
SHORT_TYPES = ROUGE_TYPES[:3]  # where room is short (log lines, curves): rougeLsum, close to rougeL, left out

_REGEX_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\s*\n\s*")


def __getattr__(name: str) -> Any:
    """``SPLITTER`` and ``nltk``, found on first use: rouge_score imports nltk, which imports scipy (~1 s), and a
    run whose records carry no reference never needs them."""
    if name == "SPLITTER":
        return _splitter()[0]
    if name == "nltk":
        return _nltk()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _nltk() -> Any:
    try:  # rouge_score depends on nltk, but its punkt data is a separate download.
        import nltk
    except ImportError:  # pragma: no cover - rouge_score cannot import without nltk
        return None
    return nltk


def heading(types: Sequence[str] = ROUGE_TYPES) -> str:
    """``ROUGE-1/2/L/Lsum`` (for ``types``), the head of a line of figures."""
    return "ROUGE-" + "/".join(ROUGE_LABELS[t].removeprefix("ROUGE-") for t in types)


def figures(scores: Mapping[str, float], types: Sequence[str] = ROUGE_TYPES, sep: str = " / ", prefix: str = "") -> str:
    """The scores of ``types`` (keyed ``prefix`` + type, as the Trainer's ``eval_``) to two decimals; nan if missing."""
    return sep.join(f"{scores.get(prefix + t, float('nan')):.2f}" for t in types)


def regex_sentences(text: str) -> list[str]:
    """Split after . ! ? followed by whitespace, and at newlines; drop empty pieces."""
    return [piece.strip() for piece in _REGEX_SENTENCE_BREAK.split(text) if piece.strip()]


def _pick_splitter() -> tuple[str, Callable[[str], list[str]]]:
    """Use nltk punkt if its data is on disk (a LookupError means it is not)."""
    nltk = _nltk()
    if nltk is None:
        return "regex-fallback", regex_sentences
    try:
        nltk.sent_tokenize("Probe one. Probe two.")
    except LookupError:
        return "regex-fallback", regex_sentences
    return "nltk-punkt", nltk.sent_tokenize


@functools.cache
def _splitter() -> tuple[str, Callable[[str], list[str]]]:
    """The splitter's name and function, picked once."""
    return _pick_splitter()


@functools.cache
def _scorer() -> Any:
    """Built once: score() runs per record in a hot loop. Passing a tokenizer makes RougeScorer ignore
    use_stemmer; ours stems exactly like the default one does, memoised (about 4x faster on repeated words)."""
    from nltk.stem import porter
    from rouge_score import rouge_scorer, tokenize, tokenizers

    class CachedStemTokenizer(tokenizers.Tokenizer):
        """rouge_score's DefaultTokenizer(use_stemmer=True) with a memoised Porter stemmer (stemming is pure)."""

        def __init__(self) -> None:
            self.stem = functools.lru_cache(maxsize=1 << 16)(porter.PorterStemmer().stem)

        def tokenize(self, text: str) -> list[str]:
            return tokenize.tokenize(text, self)

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True, tokenizer=CachedStemTokenizer())


def prepare_text(text: str) -> str:
    """Strip, turn Pegasus ``<n>`` into a newline, and put one sentence per line."""
    text = text.replace("<n>", "\n").strip()
    return "\n".join(_splitter()[1](text))


def _best_per_type(candidates: list[dict[str, Score]]) -> dict[str, Score]:
    """Keep, per ROUGE type, the candidate with the highest F (first one on ties)."""
    best: dict[str, Score] = {}
    for rouge_type in ROUGE_TYPES:
        index = max(range(len(candidates)), key=lambda i: candidates[i][rouge_type].fmeasure)  # first on ties
        best[rouge_type] = candidates[index][rouge_type]
    return best


def score(prediction: str, reference: str | Sequence[str]) -> dict[str, float]:
    """ROUGE-1/2/L/Lsum F-measures x100; with several references, the best F per type.

    Multi-reference selection follows rouge_score's ``score_multi`` (argmax of F per type).
    """
    references = [reference] if isinstance(reference, str) else list(reference)
    if not references:
        raise ValueError("score() needs at least one reference")
    prediction = prepare_text(prediction)
    candidates = [_scorer().score(prepare_text(ref), prediction) for ref in references]
    best = _best_per_type(candidates)
    return {rouge_type: best[rouge_type].fmeasure * 100 for rouge_type in ROUGE_TYPES}


def _as_matrix(per_record: Sequence[dict[str, float]]) -> np.ndarray:
    """Records x ROUGE types, in ROUGE_TYPES order; a missing type is an error."""
    if not per_record:
        raise ValueError("no per-record ROUGE scores to aggregate")
    for index, record in enumerate(per_record):
        missing = [t for t in ROUGE_TYPES if t not in record]
        if missing:
            raise ValueError(f"record {index}: ROUGE scores lack {', '.join(missing)}")
    import numpy as np  # numpy only where scores are aggregated: importing the names stays light (invoke --list)

    return np.array([[record[t] for t in ROUGE_TYPES] for record in per_record], dtype=float)


def _resampled_means(matrix: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Means of ``n_resamples`` bootstrap samples, in chunks to bound memory."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n_records = matrix.shape[0]
    chunk = max(1, 2_000_000 // n_records)  # at most ~2M indices (16 MB) at once
    means = []
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        indices = rng.integers(0, n_records, size=(size, n_records))
        means.append(matrix[indices].mean(axis=1))
    return np.concatenate(means)


def bootstrap_interval(
    per_record: list[dict[str, float]],
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, dict[str, float]]:
    """Plain mean per ROUGE type with a percentile bootstrap interval around it.

    ``low``/``high`` are the (1-confidence)/2 and 1-(1-confidence)/2 percentiles of the
    means of ``n_resamples`` resamples (with replacement) of the records; the same seed
    gives the same interval. The interval is widened to contain the mean when float
    rounding (e.g. all records equal) would leave the mean a hair outside it.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    matrix = _as_matrix(per_record)
    plain = matrix.mean(axis=0)
    means = _resampled_means(matrix, n_resamples, seed)
    tail = (1.0 - confidence) / 2 * 100
    import numpy as np

    low, high = np.percentile(means, [tail, 100 - tail], axis=0)
    return {
        rouge_type: {
            "mean": float(plain[i]),
            "low": float(min(low[i], plain[i])),
            "high": float(max(high[i], plain[i])),
        }
        for i, rouge_type in enumerate(ROUGE_TYPES)
    }


class RougeMean:
    """Mean ROUGE F x100 of the records added so far, in constant memory however long the stream."""

    def __init__(self) -> None:
        self.n = 0  # records added
        self.sums = dict.fromkeys(ROUGE_TYPES, 0.0)

    def add(self, scores: Mapping[str, float]) -> None:
        """Add one record's scores (as ``score`` returns them); ValueError naming the ROUGE types missing."""
        missing = [t for t in ROUGE_TYPES if t not in scores]
        if missing:
            raise ValueError(f"ROUGE scores lack {', '.join(missing)}")
        for rouge_type in ROUGE_TYPES:
            self.sums[rouge_type] += float(scores[rouge_type])
        self.n += 1

    def mean(self) -> dict[str, float]:
        """Mean F x100 per ROUGE type; {} before the first record."""
        return {rouge_type: total / self.n for rouge_type, total in self.sums.items()} if self.n else {}
