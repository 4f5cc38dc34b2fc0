"""The PyTorch path, attempt by attempt: what a static cache, torch.compile and bf16 give the transformers
backend, against the fixed-batches-of-8 loop, at equal threads, with the share of summaries identical to
the plain fp32 engine's (an attempt is adopted only if it is faster with identical output).

Attempts, each the dialogsum-batch Engine over the same records with the same model weights:

* ``fixed-8``: the anchor; fixed batches of 8 in arrival order, padded to the longest, ``generate``.
* ``engine fp32``: the engine as shipped (length-sorted token-budget batches, key-padding mask).
* ``engine bf16``: the same weights cast to bfloat16 (``--dtype bfloat16``); the benchmark says whether
  this CPU has native bf16 (avx512_bf16 / amx_bf16).
* ``engine static cache``: ``generation_config.cache_implementation = "static"`` (preallocated KV cache).
* ``engine static + compile``: the same with the model's forward through ``torch.compile`` (dynamic
  shapes). The first run pays the compilation, as every job would; "best s" is a warm run.
* ``engine step attention``: attention of a single query token (every decoding step) as two matrix
  products instead of SDPA's CPU flash kernel.

Attempts run in rounds at each thread count (every attempt once per round, models loaded once), so that
the machine's drift over a run of many minutes hits them alike; the best round counts.

    python bench/bench_pytorch_path.py --model mid --records 160 --source dialogsum --threads 1,2
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
from common import dialogues, markdown_table, model_dir

ATTEMPTS = (
    "fixed-8",
    "engine fp32",
    "engine bf16",
    "engine static cache",
    "engine static + compile",
    "engine step attention",
)


def step_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any) -> Any:
    """A decoding step's attention (one query token) as two matrix products; SDPA otherwise. On a 25-row
    batch's cross-attention (284 keys) the CPU flash kernel took 2.2 ms a call, the products 0.8 ms."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if query.shape[2] != 1 or module.training:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    scores = torch.matmul(query, key.transpose(2, 3)) * (kwargs.get("scaling") or query.shape[-1] ** -0.5)
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, float("-inf"))
        else:
            scores = scores + attention_mask
    return torch.matmul(torch.softmax(scores, dim=-1), value).transpose(1, 2).contiguous(), None


def cpu_bf16() -> bool:
    """Whether the CPU multiplies bf16 natively (otherwise torch emulates it, slowly)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def engine(model: Any, tokenizer: Any, generation: Any, texts: list[str]) -> list[str]:
    """The command's engine (harness.engine) over a transformers backend holding this model."""
    from dialogsum_batch.backends.transformers import TransformersBackend

    backend = TransformersBackend(model, tokenizer, generation, 1024)
    return [o.summary or "" for o in harness.engine(backend).run(harness.records(texts))]


def prepare(attempt: str, path: Path, args: argparse.Namespace) -> tuple[Callable[[list[str]], list[str]], str]:
    """The attempt as a function of the texts, and a note on how it was set up."""
    import torch

    model, tokenizer, generation = harness.load_transformers(path, 1, args.max_new_tokens)
    note = ""
    if attempt == "fixed-8":
        return (lambda texts: harness.fixed_batches(model, tokenizer, generation, texts)[0]), note
    if attempt == "engine bf16":
        model.to(torch.bfloat16)
        note = "native bf16" if cpu_bf16() else "bf16 emulated (no avx512_bf16 / amx_bf16)"
    if attempt.startswith("engine static"):
        generation.cache_implementation = "static"
    if attempt == "engine step attention":
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

        AttentionInterface.register("step", step_attention)
        AttentionMaskInterface.register("step", sdpa_mask)
        model.set_attn_implementation("step")
    if attempt == "engine static + compile":
        model.forward = torch.compile(model.forward, dynamic=True)
        note = "the first run pays the compilation"
    return (lambda texts: engine(model, tokenizer, generation, texts)), note


def measure(path: Path, texts: list[str], threads: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every attempt at one thread count, in rounds; the best round counts. An attempt that does not run on
    this model is a finding, not a crash: its error is reported in its row."""
    import torch

    torch.set_num_threads(threads)
    prepared, failed = {}, {}
    for attempt in args.attempts:
        try:
            prepared[attempt] = prepare(attempt, path, args)
        except Exception as exc:
            failed[attempt] = f"{type(exc).__name__}: {str(exc)[:300]}"

    def run(attempt: str) -> dict[str, Any]:
        if attempt in failed:
            return {}
        try:
            started = time.perf_counter()
            summaries = prepared[attempt][0](texts)
            return {"seconds": round(time.perf_counter() - started, 3), "summaries": summaries}
        except Exception as exc:
            failed[attempt] = f"{type(exc).__name__}: {exc}"[:300]
            return {}

    runs = harness.rounds(prepared, args.repeats, run, label=lambda attempt: f"{attempt}, {threads} thread(s)")
    return [entry(attempt, threads, runs.get(attempt, []), prepared, failed, len(texts)) for attempt in args.attempts]


def entry(attempt: str, threads: int, tried: list[dict], prepared: dict, failed: dict, records: int) -> dict[str, Any]:
    """One attempt's row: its best and first seconds and summaries, or its error."""
    if attempt in failed:
        return {"attempt": attempt, "threads": threads, "error": failed[attempt]}
    best = harness.fastest(tried)
    return {
        "attempt": attempt,
        "threads": threads,
        "note": prepared[attempt][1],
        "all_seconds": [run["seconds"] for run in tried],
        "seconds": best["seconds"],
        "first_seconds": tried[0]["seconds"],
        "dialogues_per_s": round(records / best["seconds"], 3),
        "summaries": best["summaries"],
    }


def report(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Speed against fixed-8 and identical share against engine fp32, at each thread count."""
    for run in runs:
        same = {r["attempt"]: r for r in runs if r["threads"] == run["threads"] and "error" not in r}
        if "error" in run:
            continue
        anchor, plain = same.get("fixed-8"), same.get("engine fp32")
        run["vs_fixed_8"] = round(anchor["seconds"] / run["seconds"], 3) if anchor else None
        if plain:
            run["identical"] = harness.same_share(run["summaries"], plain["summaries"])
    for run in runs:
        run.pop("summaries", None)
    return runs


def markdown(result: dict[str, Any]) -> str:
    rows = [
        [
            r["attempt"],
            r["threads"],
            r.get("seconds", "-"),
            r.get("first_seconds", "-"),
            r.get("dialogues_per_s", "-"),
            f"{r['vs_fixed_8']:.2f}x" if r.get("vs_fixed_8") else "-",
            r.get("identical", "-"),
            r.get("error") or r.get("note", ""),
        ]
        for r in result["runs"]
    ]
    table = markdown_table(
        [
            "attempt",
            "threads",
            "best s",
            "first run s",
            "dialogues/s",
            "vs fixed-8",
            "identical to engine fp32",
            "note",
        ],
        rows,
    )
    return (
        f"{table}\n\nModel {result['model']} (random weights), {result['records']} {result['source']} records, "
        f"greedy, max_new_tokens {result['max_new_tokens']}, best of {result['repeats']} rounds, one process, each "
        f"attempt with its own copy of the same weights; native bf16: {result['cpu_bf16']}."
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = harness.arguments(
        __doc__, __file__, model="mid", records=160, threads="1,2", repeats=2, name="pytorch-path-{model}"
    )
    parser.add_argument(
        "--attempts", type=harness.choice_list(ATTEMPTS), default=",".join(ATTEMPTS), help="comma list of %(default)s"
    )
    return harness.parse(parser, argv)


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    """Every attempt at every thread count."""
    path = model_dir(args.model, args.work_dir)
    texts = [row["dialogue"] for row in dialogues(args.records, args.source)]
    runs = [run for threads in args.threads for run in measure(path, texts, threads, args)]
    result = {
        "records": len(texts),
        "cpu_bf16": cpu_bf16(),
        "runs": report(runs),
    }
    return result


main = harness.benchmark_main(parse_args, run_all, markdown)


if __name__ == "__main__":
    main()
