"""How long the benchmark's dialogues are, in tokens: the benchmark model's and, optionally, a real tokenizer's.

A speed figure means little without the lengths it was taken at: cost grows with source tokens, and a
vocabulary trained on too little text splits everyday words and inflates them. This prints the mean
source tokens of ``--source`` records under each benchmark model's tokenizer (as the command sees them:
truncated at 1,024, ``</s>`` included) and, with ``--bpe FILE``, under a tiktoken BPE file, such as GPT-2's
(BART's tokenizer; ``gpt2.tiktoken`` ships inside the ``openai-whisper`` source package, and reading it
needs the ``tiktoken`` package, neither of them a dependency of this project).

\b
    python bench/source_lengths.py --source dialogsum --records 160 --model mid
    pip download --no-deps openai-whisper && tar xzf openai_whisper-*.tar.gz && pip install tiktoken
    python bench/source_lengths.py --source dialogsum --records 160 --model mid \\
        --bpe openai_whisper-20250625/whisper/assets/gpt2.tiktoken
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MODELS, WORK_DIR, available_sources, dialogues, model_dir

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def model_lengths(model: Path, texts: Sequence[str]) -> list[int]:
    """Source tokens of ``texts`` under the tokenizer of the model folder ``model``, as the command encodes them."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    return [len(ids) for ids in tokenizer(list(texts), truncation=True, max_length=1024)["input_ids"]]


def bpe_lengths(path: Path, texts: Sequence[str]) -> list[int]:
    """Tokens of ``texts`` under the tiktoken BPE file ``path`` (GPT-2's splitting pattern)."""
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(str(path))
    encoding = tiktoken.Encoding(path.stem, pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={})
    return [len(encoding.encode_ordinary(text)) for text in texts]


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default=available_sources()[-1], help="synthetic, dialogsum or a JSONL file")
    parser.add_argument("--records", type=int, default=160)
    parser.add_argument("--model", action="append", choices=sorted(MODELS), help="repeatable; default mid")
    parser.add_argument("--bpe", type=Path, help="a .tiktoken BPE file to count with as well")
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR, help="where benchmark models are kept")
    args = parser.parse_args(argv)
    texts = [row["dialogue"] for row in dialogues(args.records, args.source)]
    means = {f"{name} model": model_lengths(model_dir(name, args.work_dir), texts) for name in args.model or ["mid"]}
    if args.bpe:
        means[f"{args.bpe.stem} BPE"] = bpe_lengths(args.bpe, texts)
    report = {name: round(sum(lengths) / len(lengths), 1) for name, lengths in means.items()}
    print(json.dumps({"source": args.source, "records": len(texts), "mean_source_tokens": report}))
    return report


if __name__ == "__main__":
    main()
