"""The idiomatic transformers loop a user would otherwise write, as a program: the anchor of the
whole-process benchmarks (``bench_default.py``).

It imports transformers, loads the model in float32, and calls ``generate`` on fixed batches of 8 in
arrival order, each padded to its longest row; it takes the command's own flags, so that one command
line (``harness.summarize_command``) serves both.

    python bench/fixed_loop.py records.jsonl -m MODEL -o out.jsonl --threads 2 --num-beams 1
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
from common import read_records


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", type=Path, help="JSON Lines with a dialogue field")
    parser.add_argument("-m", "--model", type=Path, required=True)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's own choice)")
    parser.add_argument("--num-beams", type=int, help="beam size [default: the model's]")
    parser.add_argument("--max-new-tokens", type=int, help="summary length cap [default: the model's]")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer, generation = harness.load_transformers(args.model, args.num_beams, args.max_new_tokens)
    rows = read_records(args.records)
    summaries, _ = harness.fixed_batches(model, tokenizer, generation, [row["dialogue"] for row in rows])
    with args.output.open("w", encoding="utf-8") as out:
        out.writelines(json.dumps({"summary": summary}) + "\n" for summary in summaries)


if __name__ == "__main__":
    main()
