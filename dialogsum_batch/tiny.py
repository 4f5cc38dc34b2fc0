"""A tiny random-weight Pegasus with a locally trained vocabulary, built offline in seconds.

It stands in for a real checkpoint in end-to-end tests and demos: the Hub is not needed, the same
seed gives byte-identical files, and the folder loads with the ``Auto*`` classes like any other.

    python -m dialogsum_batch.tiny /tmp/tiny-pegasus --seed 0
"""

from __future__ import annotations

import argparse
import io
import json
import string
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, DialogsumError, InputError
from .logs import library_bars

if TYPE_CHECKING:  # heavy imports stay lazy so `import dialogsum_batch.tiny` is cheap
    import sentencepiece as spm
    from transformers import GenerationConfig, PegasusConfig, PegasusForConditionalGeneration, PegasusTokenizer

# Pegasus' own layout with offset 0: pad 0, eos 1, then the two mask tokens and unk.
SPECIAL_PIECES = ("<pad>", "</s>", "<mask_1>", "<mask_2>", "<unk>")
SYNTHETIC_RECORDS = 400  # synthetic dialogues added to the project's data for vocabulary training
SPM_SEED = 0  # the vocabulary depends on the texts only, never on the weight seed
# Characters kept in the vocabulary even when the corpus lacks them, so chat text rarely hits <unk>.
COVERAGE_TEXT = (
    string.ascii_letters + string.digits + string.punctuation,
    "àáâäãåçèéêëìíîïñòóôöõùúûüýÿßæøœ ÀÁÂÄÇÈÉÊËÎÏÑÒÓÔÖÙÚÛÜ €£¥°§±×÷…–—‘’“”«»•",
    "😀😁😂🤣😃😄😅😆😉😊😋😎😍😘🙂🤗🤔😐😑😶🙄😏😣😥😮😯😪😫😴😌😛😜😝🤤😒😓😔😕🙃🤑😲🙁😖😞😟😤😢😭😦😧😨😩🤯😬😰😱😳🤪😵😡😠🤬😷🤒🤕🤢🤮🤧😇🤠🤡🥳🥺🤥🤫🤭🧐🤓",
    "\t\r\u200d\ufe0f",  # tab, a stray CR from CRLF text, emoji joiner and variation selector
    "👍👎👌✌🤞👏🙌🙏💪👋❤💔💕💖💗💙💚💛💜🖤💯🔥✨🎉🎂🎁⭐🌟☀🌞🌙⚡☔❄🍕🍔🍺🍷☕🍰🍫🐶🐱🚗✈🏠📱💻📷🎵⚽🏆💰✅❌❗❓⚠😻😺",
)


@dataclass(frozen=True)
class TinySpec:
    """Sizes of the tiny model; all small enough to build and run on two CPU cores."""

    vocab_size: int = 2000  # upper bound; a small corpus may yield fewer pieces
    d_model: int = 64  # hidden size, divisible by heads
    layers: int = 2  # encoder layers, and as many decoder layers
    heads: int = 4  # attention heads in every attention block
    ffn_dim: int = 128  # feed-forward inner size
    max_positions: int = 1024  # longest source or target in tokens

    def check(self) -> None:
        """Raise ConfigError for sizes the model cannot be built with."""
        if min(self.d_model, self.layers, self.heads, self.ffn_dim, self.max_positions) < 1:
            raise ConfigError(f"tiny model sizes must be positive: {self}")
        if self.d_model % self.heads:
            raise ConfigError(f"d_model {self.d_model} is not divisible by heads {self.heads}")
        if self.vocab_size < len(SPECIAL_PIECES) + 100:
            raise ConfigError(f"vocab_size {self.vocab_size} is too small (at least {len(SPECIAL_PIECES) + 100})")


# ------------------------------------------------------------------------------- texts


def project_data_dir() -> Path:
    """The repository's ``data/`` folder, which holds the project's dialogue JSONL files."""
    return Path(__file__).resolve().parent.parent / "data"


def jsonl_texts(path: Path) -> Iterator[str]:
    """Yield the dialogue and summary of every record in a JSONL file; bad lines raise InputError."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(path.name, number, f"invalid JSON: {exc.msg}", line[:200]) from None
            if not isinstance(record, dict):
                raise InputError(path.name, number, "not a JSON object", line[:200])
            for name in ("dialogue", "summary"):
                if not isinstance(record.get(name), str):
                    raise InputError(path.name, number, f"field '{name}' is missing or not a string", line[:200])
                yield record[name]


def project_texts(data_dir: Path | None = None) -> Iterator[str]:
    """Dialogues and summaries from ``data/*.jsonl`` in name order (none when the folder is absent)."""
    folder = project_data_dir() if data_dir is None else data_dir
    for path in sorted(folder.glob("*.jsonl")):
        yield from jsonl_texts(path)


def synthetic_texts(n: int = SYNTHETIC_RECORDS) -> Iterator[str]:
    """Dialogues and summaries of the first ``n`` synthetic records (seed 0)."""
    from .synthetic import generate

    for record in generate(n, seed=0):
        yield record["dialogue"]
        yield record["summary"]


def default_texts() -> Iterator[str]:
    """The vocabulary corpus: the project's data files, then synthetic dialogues."""
    return chain(project_texts(), synthetic_texts())


def training_sentences(texts: Iterable[str]) -> Iterator[str]:
    """One sentence per non-blank line (turns stay apart), then the coverage characters."""
    for text in texts:
        for line in text.splitlines():
            if line.strip():
                yield line.strip()
    for line in COVERAGE_TEXT:
        yield " ".join(line)  # spaced out so each character is seen as a word of its own


# ---------------------------------------------------------------------------- tokenizer


def train_sentencepiece(sentences: Iterable[str], vocab_size: int) -> spm.SentencePieceProcessor:
    """Train a unigram SentencePiece model in memory, deterministically (one thread, no shuffling)."""
    import sentencepiece as spm

    proto = io.BytesIO()
    spm.set_random_generator_seed(SPM_SEED)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=proto,
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=False,  # a small corpus gives fewer pieces instead of failing
        character_coverage=1.0,  # every character seen gets a piece: few <unk> on chat text
        normalization_rule_name="identity",  # the HF tokenizer applies no NFKC, so neither do we
        num_threads=1,
        shuffle_input_sentence=False,
        input_sentence_size=0,
        max_sentence_length=1 << 16,
        unk_id=0,
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        minloglevel=2,
    )
    return spm.SentencePieceProcessor(model_proto=proto.getvalue())


def pegasus_vocab(processor: spm.SentencePieceProcessor) -> list[tuple[str, float]]:
    """Pegasus' special tokens first, then the SentencePiece pieces (its own <unk> dropped)."""
    pieces = [
        (processor.id_to_piece(i), float(processor.get_score(i)))
        for i in range(processor.get_piece_size())
        if not (processor.is_unknown(i) or processor.is_control(i))
    ]
    return [(piece, 0.0) for piece in SPECIAL_PIECES] + pieces


def build_tokenizer(texts: Iterable[str], vocab_size: int, max_positions: int) -> PegasusTokenizer:
    """A tokenizers-backed PegasusTokenizer over a vocabulary trained on ``texts``."""
    from transformers import PegasusTokenizer

    spm_size = vocab_size - len(SPECIAL_PIECES) + 1  # the SentencePiece <unk> is replaced by ours
    processor = train_sentencepiece(training_sentences(texts), spm_size)
    return PegasusTokenizer(vocab=pegasus_vocab(processor), offset=0, model_max_length=max_positions)


# -------------------------------------------------------------------------------- model


def tiny_config(spec: TinySpec, vocab_size: int) -> PegasusConfig:
    """A PegasusConfig of the given sizes, with the fields CTranslate2's converter reads."""
    from transformers import PegasusConfig

    return PegasusConfig(
        vocab_size=vocab_size,
        d_model=spec.d_model,
        encoder_layers=spec.layers,
        decoder_layers=spec.layers,
        encoder_attention_heads=spec.heads,
        decoder_attention_heads=spec.heads,
        encoder_ffn_dim=spec.ffn_dim,
        decoder_ffn_dim=spec.ffn_dim,
        max_position_embeddings=spec.max_positions,
        scale_embedding=True,  # as pegasus-large
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        forced_eos_token_id=1,
        normalize_before=True,  # pre-layer-norm, as Pegasus computes; CTranslate2 needs it stated
        normalize_embedding=False,
    )


def tiny_generation_config() -> GenerationConfig:
    """Greedy decoding up to 64 new tokens: fast, and what CTranslate2 reproduces exactly."""
    from transformers import GenerationConfig

    return GenerationConfig(
        num_beams=1,
        do_sample=False,
        max_new_tokens=64,
        no_repeat_ngram_size=3,  # random weights loop on one token otherwise
        decoder_start_token_id=0,
        eos_token_id=1,
        pad_token_id=0,
        forced_eos_token_id=1,
    )


def random_model(config: PegasusConfig, seed: int) -> PegasusForConditionalGeneration:
    """Build the model with weights drawn from ``seed``, leaving the caller's RNG state untouched."""
    import torch
    from transformers import PegasusForConditionalGeneration

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = PegasusForConditionalGeneration(config)
    model.generation_config = tiny_generation_config()
    return model.eval()


def model_card(spec: TinySpec, seed: int, vocab_size: int, parameters: int, corpus: str) -> str:
    """A short README.md stating that the weights are random (no timestamps: builds stay identical)."""
    return f"""---
library_name: transformers
pipeline_tag: summarization
tags: [pegasus, random-weights, testing]
---

# Tiny random Pegasus (seed {seed})

**Random weights: this model has not been trained and writes nonsense.** It exists so that tests
and demos of dialogsum-batch can load, generate, fine-tune and export a real
`PegasusForConditionalGeneration` offline, in seconds.

- {parameters:,} parameters: d_model {spec.d_model}, {spec.layers}+{spec.layers} layers, {spec.heads} heads,
  FFN {spec.ffn_dim}, {spec.max_positions} positions
- Vocabulary: {vocab_size} pieces, a unigram SentencePiece model trained on {corpus},
  after `<pad>`, `</s>`, `<mask_1>`, `<mask_2>`, `<unk>`
- Rebuild: `python -m dialogsum_batch.tiny OUTPUT_DIR --seed {seed}` (same seed, data and library versions: same bytes)
"""


def build_tiny_model(
    output_dir: str | Path,
    seed: int = 0,
    texts: Iterable[str] | None = None,
    vocab_size: int = 2000,
    d_model: int = 64,
    layers: int = 2,
    heads: int = 4,
    ffn_dim: int = 128,
    max_positions: int = 1024,
) -> Path:
    """Write a tiny random Pegasus (model, tokenizer, generation config, card) to ``output_dir``.

    ``texts`` train the vocabulary; by default the project's ``data/*.jsonl`` plus synthetic chats.
    """
    spec = TinySpec(vocab_size, d_model, layers, heads, ffn_dim, max_positions)
    spec.check()
    if isinstance(texts, str):
        texts = [texts]  # one text, not an iterable of its characters
    tokenizer = build_tokenizer(default_texts() if texts is None else texts, vocab_size, max_positions)
    model = random_model(tiny_config(spec, len(tokenizer)), seed)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    with library_bars(show=False):  # a tiny save needs no bar on stderr
        model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    corpus = "the project's dialogues and synthetic chats" if texts is None else "texts given by the caller"
    card = model_card(spec, seed, len(tokenizer), model.num_parameters(), corpus)
    (out / "README.md").write_text(card, encoding="utf-8")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dialogsum_batch.tiny OUTPUT_DIR [--seed N]``: build and print the folder."""
    parser = argparse.ArgumentParser(prog="python -m dialogsum_batch.tiny", description=__doc__.split("\n")[0])
    parser.add_argument("output_dir", type=Path, help="folder to write the model into")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: 0)")
    parser.add_argument("--vocab-size", type=int, default=2000, help="most vocabulary pieces (default: 2000)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        out = build_tiny_model(args.output_dir, seed=args.seed, vocab_size=args.vocab_size)
    except DialogsumError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"built in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
