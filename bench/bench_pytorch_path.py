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
import copy
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    RESULTS_DIR,
    WORK_DIR,
    available_sources,
    chunks,
    dialogues,
    environment,
    markdown_table,
    model_dir,
    publish,
)

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


def load(path: Path) -> tuple[Any, Any, Any]:
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from dialogsum_batch.logs import library_bars, quiet_transformers

    quiet_transformers()
    with library_bars(show=False):
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSeq2SeqLM.from_pretrained(path, dtype=torch.float32).eval()
    generation = copy.deepcopy(model.generation_config)
    return model, tokenizer, generation


def fixed_8(model: Any, tokenizer: Any, generation: Any, texts: list[str]) -> list[str]:
    import torch

    out: list[str] = []
    with torch.inference_mode():
        for batch in chunks(texts, 8):
            inputs = tokenizer(batch, max_length=1024, truncation=True, padding=True, return_tensors="pt")
            output = model.generate(**inputs, generation_config=generation)
            out += tokenizer.batch_decode(output, skip_special_tokens=True)
    return [text.strip() for text in out]


def engine(model: Any, tokenizer: Any, generation: Any, texts: list[str]) -> list[str]:
    from dialogsum_batch.backends.transformers import TransformersBackend
    from dialogsum_batch.config import BatchSettings
    from dialogsum_batch.inference.engine import Engine
    from dialogsum_batch.inference.records import Record

    backend = TransformersBackend(model, tokenizer, generation, 1024)
    outcomes = list(Engine(backend, BatchSettings()).run(Record(i, str(i), t) for i, t in enumerate(texts)))
    return [o.summary or "" for o in outcomes]


def prepare(attempt: str, path: Path) -> tuple[Callable[[list[str]], list[str]], str]:
    """The attempt as a function of the texts, and a note on how it was set up."""
    import torch

    model, tokenizer, generation = load(path)
    generation.num_beams, generation.max_new_tokens = 1, ARGS.max_new_tokens
    generation.min_length = generation.min_new_tokens = 0
    note = ""
    if attempt == "fixed-8":
        return (lambda texts: fixed_8(model, tokenizer, generation, texts)), note
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


def measure(attempts: list[str], path: Path, texts: list[str], threads: int, repeats: int) -> list[dict[str, Any]]:
    """Every attempt at one thread count, in rounds (each round runs them all), so that the machine's drift
    over the minutes of a run hits them alike; the best round counts."""
    import torch

    torch.set_num_threads(threads)
    runs: dict[str, dict[str, Any]] = {}
    prepared = {}
    for attempt in attempts:
        try:
            prepared[attempt] = prepare(attempt, path)
        except Exception as exc:  # an attempt that does not run on this model is a finding, not a crash
            runs[attempt] = {"attempt": attempt, "threads": threads, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    for round_ in range(repeats):
        for attempt, (run, note) in prepared.items():
            if "error" in runs.get(attempt, {}):
                continue
            print(f"{attempt}, {threads} thread(s), round {round_ + 1}/{repeats} ...", file=sys.stderr, flush=True)
            try:
                started = time.perf_counter()
                summaries = run(texts)
                seconds = time.perf_counter() - started
            except Exception as exc:
                runs[attempt] = {"attempt": attempt, "threads": threads, "error": f"{type(exc).__name__}: {exc}"[:300]}
                continue
            entry = runs.setdefault(attempt, {"attempt": attempt, "threads": threads, "all_seconds": [], "note": note})
            entry["all_seconds"].append(round(seconds, 3))
            entry["summaries"] = summaries
    for entry in runs.values():
        if "all_seconds" in entry:
            best = min(entry["all_seconds"])
            entry.update(
                seconds=best, first_seconds=entry["all_seconds"][0], dialogues_per_s=round(len(texts) / best, 3)
            )
    return [runs[a] for a in attempts if a in runs]


def report(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Speed against fixed-8 and identical share against engine fp32, at each thread count."""
    for run in runs:
        same = {r["attempt"]: r for r in runs if r["threads"] == run["threads"] and "error" not in r}
        if "error" in run:
            continue
        anchor, plain = same.get("fixed-8"), same.get("engine fp32")
        run["vs_fixed_8"] = round(anchor["seconds"] / run["seconds"], 3) if anchor else None
        if plain:
            pairs = list(zip(run["summaries"], plain["summaries"], strict=True))
            run["identical"] = round(sum(a == b for a, b in pairs) / len(pairs), 3)
    for run in runs:
        run.pop("summaries", None)
    return runs


def markdown(result: dict[str, Any], command: str) -> str:
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
    env = result["environment"]
    return (
        f"{table}\n\nModel {result['model']} (random weights), {result['records']} {result['source']} records, "
        f"greedy, {result['max_new_tokens']} new tokens, best of {result['repeats']} rounds, one process, each "
        f"attempt with its own copy of the same weights. {env['machine']}, {env['cpu_cores']} cores, native bf16: "
        f"{result['cpu_bf16']}; torch {env['torch']}; load average {env['load_average']}.\n\n"
        f"Reproduce: `{command}`\n"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mid", choices=["tiny", "mid", "large"])
    parser.add_argument("--records", type=int, default=160)
    parser.add_argument("--source", default="dialogsum" if "dialogsum" in available_sources() else "synthetic")
    parser.add_argument("--threads", default="1,2", help="comma list of thread counts")
    parser.add_argument("--attempts", default=",".join(ATTEMPTS))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR)
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


ARGS = parse_args([])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    global ARGS
    ARGS = parse_args(argv)
    path = model_dir(ARGS.model, ARGS.work_dir)
    texts = [row["dialogue"] for row in dialogues(ARGS.records, ARGS.source)]
    runs = []
    for threads in (int(t) for t in ARGS.threads.split(",")):
        runs += measure(ARGS.attempts.split(","), path, texts, threads, ARGS.repeats)
    result = {
        "model": ARGS.model,
        "records": len(texts),
        "source": ARGS.source,
        "max_new_tokens": ARGS.max_new_tokens,
        "repeats": ARGS.repeats,
        "cpu_bf16": cpu_bf16(),
        "runs": report(runs),
        "environment": environment(None),
    }
    command = "python bench/bench_pytorch_path.py " + " ".join(sys.argv[1:] if argv is None else argv)
    return publish(f"pytorch-path-{ARGS.model}", result, markdown(result, command.strip()), ARGS.output_dir)


if __name__ == "__main__":
    main()
