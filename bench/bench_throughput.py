"""Throughput of dialogsum-batch against the usual ways of running Pegasus, side by side in one process.

Every anchor summarizes the same records with the same model object, tokenizer and decoding
settings, on the same number of CPU threads:

* ``notebook``: the loop most fine-tuning tutorials use (NLP with Transformers, chapter 6): fixed
  batches of 8 in dataset order, each padded to max_length 1024, ``generate``, decode one by one.
* ``fixed-8``: idiomatic transformers: fixed batches of 8 in arrival order, padded to the longest.
* ``ctranslate2``: CTranslate2's own ``translate_batch`` over all records with its length sorting
  (``batch_type="tokens"``), on a float32 conversion of the same weights.
* ``ours``: dialogsum-batch's ``Engine`` with the ``TransformersBackend``.

Anchors run in rounds (all anchors once per round) so that a burst of load on a shared machine
hits them alike; the best round of each is reported, the others are kept in the JSON.

    python bench/bench_throughput.py --model mid --beams 1,4
    python bench/bench_throughput.py --model tiny --records 512 --anchors fixed-8,ours
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
from common import (
    chunks,
    ct2_export,
    dialogues,
    environment,
    load_average,
    markdown_table,
    model_dir,
    peak_rss_mb,
    publish,
    reset_peak_rss,
)

from dialogsum_batch.config import default_of

ANCHORS = ("notebook", "fixed-8", "ctranslate2", "ours")
DEFAULT_RECORDS = {"tiny": 512, "mid": 192, "large": 24}  # a few minutes per anchor and case on two cores
NOTEBOOK_RECORDS = 32  # every notebook batch is padded to 1024 tokens and costs the same: a subset gives its rate
NOTEBOOK_LENGTH = 1024  # the tutorial pads every batch to the model's full source length
FIXED_BATCH = 8  # the tutorial's batch size for SAMSum, and a common idiomatic choice


@dataclass(frozen=True)
class Case:
    """One measurement setting: model, decoding and inputs; unset ones are the command's defaults."""

    model: str = "mid"  # tiny | mid | large (bench/common.py MODELS)
    beams: int = 1
    max_new_tokens: int | None = default_of("max_new_tokens")  # None: the model's (random weights run to it)
    records: int = 0  # 0: DEFAULT_RECORDS[model]
    source: str = "synthetic"  # synthetic | dialogsum | a JSONL path
    threads: int = default_of("threads")  # 0: what the backend's automatic choice picks for this model
    batch_tokens: int = default_of("batch_tokens")  # ours and CTranslate2
    repeats: int = 2


@dataclass
class Measure:
    """What one anchor did in one round."""

    anchor: str
    seconds: float
    dialogues: int
    generated_tokens: int
    real_tokens: int  # source tokens
    padded_tokens: int  # source tokens once padded (estimated for CTranslate2)
    peak_rss_mb: float
    extra: dict[str, Any] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        return {
            "anchor": self.anchor,
            "seconds": round(self.seconds, 3),
            "dialogues_per_second": round(self.dialogues / self.seconds, 3),
            "generated_tokens_per_second": round(self.generated_tokens / self.seconds, 1),
            "padding_efficiency": round(self.real_tokens / self.padded_tokens, 4) if self.padded_tokens else None,
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "generated_tokens": self.generated_tokens,
            **self.extra,
        }


# ---------------------------------------------------------------------------- context


@dataclass
class Context:
    """The loaded model and everything the anchors share."""

    path: Path
    model: Any
    tokenizer: Any
    generation: Any
    texts: list[str]
    lengths: list[int]  # source tokens per text, cut at the model's limit
    batch_tokens: int
    threads: int
    translator: Any = None


def load_context(case: Case, work_dir: Path) -> Context:
    """Load the benchmark model once, with the decoding settings of ``case``, on the chosen threads."""
    import torch

    from dialogsum_batch.backends.transformers import auto_threads

    path = model_dir(case.model, work_dir)
    model, tokenizer, generation = harness.load_transformers(
        path, case.beams, case.max_new_tokens, no_repeat_ngram_size=0
    )
    threads = case.threads or auto_threads(model)
    torch.set_num_threads(threads)
    texts = [r["dialogue"] for r in dialogues(case.records or DEFAULT_RECORDS[case.model], case.source)]
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=NOTEBOOK_LENGTH)["input_ids"]]
    return Context(path, model, tokenizer, generation, texts, lengths, case.batch_tokens, threads)


def generated_count(output: Any, pad_id: int) -> int:
    """Tokens generated in a ``generate`` output (the decoder start token left out), as the backend counts."""
    return int((output[:, 1:] != pad_id).sum())


# ---------------------------------------------------------------------------- anchors


def run_notebook(ctx: Context) -> Measure:
    """Fixed batches of 8 in dataset order, every one padded to 1024 tokens, decoded one summary at a time.

    Only the first NOTEBOOK_RECORDS records: all its batches have the same shape, so they take the
    same time whatever the dialogues, and a subset measures the loop's rate.
    """
    texts = ctx.texts[:NOTEBOOK_RECORDS]
    tok, generated, batches = ctx.tokenizer, 0, list(chunks(texts, FIXED_BATCH))
    started = time.perf_counter()
    for batch in batches:
        inputs = tok(batch, max_length=NOTEBOOK_LENGTH, truncation=True, padding="max_length", return_tensors="pt")
        output = ctx.model.generate(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], generation_config=ctx.generation
        )
        [tok.decode(s, skip_special_tokens=True, clean_up_tokenization_spaces=True) for s in output]
        generated += generated_count(output, tok.pad_token_id)
    seconds = time.perf_counter() - started
    return Measure(
        "notebook",
        seconds,
        len(texts),
        generated,
        sum(ctx.lengths[: len(texts)]),
        NOTEBOOK_LENGTH * len(texts),
        0.0,
        {"records": len(texts)},
    )


def run_fixed(ctx: Context) -> Measure:
    """Fixed batches of 8 in arrival order, padded to their longest member (harness.fixed_batches)."""
    started = time.perf_counter()
    _, generated = harness.fixed_batches(ctx.model, ctx.tokenizer, ctx.generation, ctx.texts, FIXED_BATCH)
    seconds = time.perf_counter() - started
    padded = sum(max(rows) * len(rows) for rows in chunks(ctx.lengths, FIXED_BATCH))
    return Measure("fixed-8", seconds, len(ctx.texts), generated, sum(ctx.lengths), padded, 0.0)


def load_translator(ctx: Context) -> Any:
    """A float32 CTranslate2 conversion of the same weights (kept beside them), or None without ctranslate2."""
    try:
        import ctranslate2
    except ImportError:
        return None
    folder = ct2_export(ctx.path, "float32")
    return ctranslate2.Translator(
        str(folder), device="cpu", compute_type="float32", inter_threads=1, intra_threads=ctx.threads
    )


def run_ctranslate2(ctx: Context) -> Measure:
    """``translate_batch`` over every record at once; CTranslate2 sorts and rebatches by length itself."""
    from dialogsum_batch.backends.ctranslate2 import decoding_options
    from dialogsum_batch.inference.batching import padded_size, plan_batches

    tok, decoding = ctx.tokenizer, decoding_options(ctx.generation)
    started = time.perf_counter()
    ids = tok(ctx.texts, truncation=True, max_length=NOTEBOOK_LENGTH)["input_ids"]
    tokens = [tok.convert_ids_to_tokens(row) for row in ids]
    results = ctx.translator.translate_batch(
        tokens, max_batch_size=ctx.batch_tokens, batch_type="tokens", **decoding.kwargs()
    )
    [tok.decode(tok.convert_tokens_to_ids(r.hypotheses[0]), skip_special_tokens=True) for r in results]
    seconds = time.perf_counter() - started
    generated = sum(len(r.hypotheses[0]) + (0 if r.hypotheses[0][-1:] == [tok.eos_token] else 1) for r in results)
    plan = plan_batches(ctx.lengths, ctx.batch_tokens, len(ctx.lengths))  # CTranslate2's own plan, estimated
    padded = sum(padded_size(ctx.lengths, rows) for rows in plan)
    return Measure(
        "ctranslate2", seconds, len(ctx.texts), generated, sum(ctx.lengths), padded, 0.0, {"padding_estimated": True}
    )


def run_ours(ctx: Context) -> Measure:
    """The command's engine (harness.engine) over a TransformersBackend holding the same model."""
    from dialogsum_batch.backends.transformers import TransformersBackend

    backend = TransformersBackend(ctx.model, ctx.tokenizer, ctx.generation, NOTEBOOK_LENGTH)
    engine = harness.engine(backend, batch_tokens=ctx.batch_tokens)
    started = time.perf_counter()
    outcomes = list(engine.run(harness.records(ctx.texts)))
    seconds = time.perf_counter() - started
    failed = next((o.error for o in outcomes if o.error is not None), None)
    if failed is not None:
        raise failed
    work = engine.counts
    extra = {
        "generate_seconds": round(work.generate_seconds, 3),
        "batches": work.batches,
        "wall_over_generate": round(seconds / max(work.generate_seconds, 1e-9), 3),
    }
    return Measure(
        "ours",
        round(seconds, 3),
        len(outcomes),
        sum(o.tokens for o in outcomes),
        work.real_tokens,
        work.padded_tokens,
        0.0,
        extra,
    )


RUNNERS: dict[str, Callable[[Context], Measure]] = {
    "notebook": run_notebook,
    "fixed-8": run_fixed,
    "ctranslate2": run_ctranslate2,
    "ours": run_ours,
}


# ---------------------------------------------------------------------------- rounds


def measure(ctx: Context, anchor: str) -> Measure:
    """One anchor once, with its own peak RSS (the process's peak is reset first where Linux allows)."""
    import torch

    reset_peak_rss()
    with torch.inference_mode():  # generate() already disables gradients; this keeps the anchors alike
        result = RUNNERS[anchor](ctx)
    result.peak_rss_mb = peak_rss_mb()
    return result


def run_case(case: Case, anchors: list[str], work_dir: Path) -> dict[str, Any]:
    """Every anchor on the same context, ``case.repeats`` rounds; the best round of each is reported."""
    ctx = load_context(case, work_dir)
    if "ctranslate2" in anchors:
        ctx.translator = load_translator(ctx)
        anchors = [a for a in anchors if a != "ctranslate2" or ctx.translator is not None]
    warm_up(ctx, anchors)
    rounds = harness.rounds(
        anchors,
        case.repeats,
        lambda anchor: measure(ctx, anchor),
        label=lambda a: f"{case.model} beams={case.beams} {a}",
    )
    return summarize(case, ctx, rounds)


def warm_up(ctx: Context, anchors: list[str]) -> None:
    """Run each anchor on a few records first so that lazy initialisation is not timed."""
    texts, lengths = ctx.texts, ctx.lengths
    ctx.texts, ctx.lengths = texts[:FIXED_BATCH], lengths[:FIXED_BATCH]
    try:
        for anchor in anchors:
            measure(ctx, anchor)
    finally:
        ctx.texts, ctx.lengths = texts, lengths


def summarize(case: Case, ctx: Context, rounds: dict[str, list[Measure]]) -> dict[str, Any]:
    """Best round per anchor, with every round's seconds and the ratio of ours to each anchor."""
    best = {a: min(ms, key=lambda m: m.seconds).figures() for a, ms in rounds.items()}
    for anchor, figures in best.items():
        figures["rounds_seconds"] = [round(m.seconds, 3) for m in rounds[anchor]]
        figures["median_seconds"] = round(statistics.median(m.seconds for m in rounds[anchor]), 3)
    if "ours" in best:
        ours = best["ours"]["dialogues_per_second"]
        for figures in best.values():
            figures["ours_speedup"] = round(ours / figures["dialogues_per_second"], 2)
    source = {
        "records": len(ctx.lengths),
        "mean_tokens": round(statistics.mean(ctx.lengths), 1),
        "max_tokens": max(ctx.lengths),
    }
    return {
        "case": {**asdict(case), "threads": ctx.threads, "batch_tokens": ctx.batch_tokens},
        "source_lengths": source,
        "anchors": best,
        "load_average": load_average(),
    }


# ---------------------------------------------------------------------------- report


def markdown(results: list[dict[str, Any]]) -> str:
    """One table row per case and anchor."""
    headers = [
        "model",
        "beams",
        "anchor",
        "dialogues/s",
        "gen tokens/s",
        "padding eff.",
        "peak RSS MiB",
        "ours ×",
        "wall/generate",
    ]
    rows = []
    for result in results:
        case = result["case"]
        for name, f in result["anchors"].items():
            rows.append(
                [
                    case["model"],
                    case["beams"],
                    name,
                    f["dialogues_per_second"],
                    f["generated_tokens_per_second"],
                    f["padding_efficiency"],
                    f["peak_rss_mb"],
                    f.get("ours_speedup"),
                    f.get("wall_over_generate"),
                ]
            )
    loads = sorted({str(r["load_average"]) for r in results})
    case = results[0]["case"]
    note = (
        f"{len_records(results[0])} {case['source']} records (notebook: the first {NOTEBOOK_RECORDS}), "
        f"max_new_tokens {case['max_new_tokens']}, "
        f"{case['threads']} torch thread(s), batch_tokens {case['batch_tokens']}, best of {case['repeats']} "
        f"rounds; load average during the runs: {', '.join(loads)}."
    )
    return f"{markdown_table(headers, rows)}\n\n{note}"


def len_records(result: dict[str, Any]) -> int:
    return result["source_lengths"]["records"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = harness.arguments(
        __doc__, __file__, records=0, source="synthetic", beams="1,4", repeats=Case.repeats, name="throughput-{model}"
    )
    parser.add_argument("--model", default="mid", help="comma list of tiny, mid, large (%(default)s)")
    parser.add_argument(
        "--batch-tokens", type=int, default=default_of("batch_tokens"), help="token budget for ours and CTranslate2"
    )
    parser.add_argument(
        "--anchors", type=harness.choice_list(ANCHORS), default=",".join(ANCHORS), help="comma list of %(default)s"
    )
    return harness.parse(parser, argv)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    harness.wait_for_load(args.max_load)
    env = environment(args.threads)
    results = []
    for model in args.model.split(","):
        for beams in args.beams:
            options = (args.max_new_tokens, args.records, args.source, args.threads, args.batch_tokens, args.repeats)
            results.append(run_case(Case(model, beams, *options), args.anchors, args.work_dir))
    publish(
        args.name, {"command": args.command, "results": results, "environment": env}, markdown(results), args.output_dir
    )
    return results


if __name__ == "__main__":
    main()
