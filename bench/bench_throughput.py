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
import copy
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    RESULTS_DIR,
    WORK_DIR,
    chunks,
    dialogues,
    environment,
    markdown_table,
    model_dir,
    peak_rss_mb,
    reset_peak_rss,
)

ANCHORS = ("notebook", "fixed-8", "ctranslate2", "ours")
DEFAULT_RECORDS = {"tiny": 512, "mid": 192, "large": 24}  # a few minutes per anchor and case on two cores
NOTEBOOK_RECORDS = 32  # every notebook batch is padded to 1024 tokens and costs the same: a subset gives its rate
NOTEBOOK_LENGTH = 1024  # the tutorial pads every batch to the model's full source length
FIXED_BATCH = 8  # the tutorial's batch size for SAMSum, and a common idiomatic choice


@dataclass(frozen=True)
class Case:
    """One measurement setting: model, decoding and inputs."""

    model: str = "mid"  # tiny | mid | large (bench/common.py MODELS)
    beams: int = 1
    max_new_tokens: int = 32  # random weights rarely stop early: every summary runs to this length
    records: int = 0  # 0: DEFAULT_RECORDS[model]
    source: str = "synthetic"  # synthetic | dialogsum | a JSONL path
    threads: int = 0  # 0: what the backend's automatic choice picks for this model
    batch_tokens: int = 0  # ours and CTranslate2; 0: the engine's default
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
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from dialogsum_batch.backends.transformers import auto_threads
    from dialogsum_batch.config import BatchSettings
    from dialogsum_batch.logs import library_bars, quiet_transformers

    quiet_transformers()
    path = model_dir(case.model, work_dir)
    with library_bars(show=False):
        model = AutoModelForSeq2SeqLM.from_pretrained(path).eval()
    threads = case.threads or auto_threads(model)
    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(path)
    generation = copy.deepcopy(model.generation_config)
    generation.update(num_beams=case.beams, max_new_tokens=case.max_new_tokens, no_repeat_ngram_size=0)
    texts = [r["dialogue"] for r in dialogues(case.records or DEFAULT_RECORDS[case.model], case.source)]
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=NOTEBOOK_LENGTH)["input_ids"]]
    return Context(
        path, model, tokenizer, generation, texts, lengths, case.batch_tokens or BatchSettings.batch_tokens, threads
    )


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
    """Fixed batches of 8 in arrival order, padded to their longest member."""
    tok, generated = ctx.tokenizer, 0
    started = time.perf_counter()
    for batch in chunks(ctx.texts, FIXED_BATCH):
        inputs = tok(batch, max_length=NOTEBOOK_LENGTH, truncation=True, padding=True, return_tensors="pt")
        output = ctx.model.generate(**inputs, generation_config=ctx.generation)
        tok.batch_decode(output, skip_special_tokens=True)
        generated += generated_count(output, tok.pad_token_id)
    seconds = time.perf_counter() - started
    padded = sum(max(rows) * len(rows) for rows in chunks(ctx.lengths, FIXED_BATCH))
    return Measure("fixed-8", seconds, len(ctx.texts), generated, sum(ctx.lengths), padded, 0.0)


def load_translator(ctx: Context, work_dir: Path) -> Any:
    """A float32 CTranslate2 conversion of the same weights (kept in ``work_dir``), or None without ctranslate2."""
    try:
        import ctranslate2
    except ImportError:
        return None
    from dialogsum_batch.export import ExportSettings, export_model

    folder = Path(work_dir) / f"{ctx.path.name}-ct2-float32"
    if not (folder / "model.bin").is_file():
        export_model(
            ExportSettings(
                source=str(ctx.path), output_dir=str(folder), format="ctranslate2", quantization="float32", force=True
            )
        )
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
    """The Engine and TransformersBackend, as the dialogsum-batch command runs them."""
    from dialogsum_batch.backends.transformers import TransformersBackend
    from dialogsum_batch.config import BatchSettings
    from dialogsum_batch.inference.engine import Engine
    from dialogsum_batch.inference.records import Record

    backend = TransformersBackend(ctx.model, ctx.tokenizer, ctx.generation, NOTEBOOK_LENGTH)
    engine = Engine(backend, BatchSettings(batch_tokens=ctx.batch_tokens))
    records = (Record(i, str(i), text) for i, text in enumerate(ctx.texts))
    started = time.perf_counter()
    outcomes = list(engine.run(records))
    seconds = time.perf_counter() - started
    for outcome in outcomes:
        if outcome.error:
            raise_error(outcome.error)
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


def raise_error(error: Exception) -> None:
    raise error


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


def run_case(case: Case, anchors: list[str], work_dir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Every anchor on the same context, ``case.repeats`` rounds; the best round of each is reported."""
    ctx = load_context(case, work_dir)
    if "ctranslate2" in anchors:
        ctx.translator = load_translator(ctx, work_dir)
        anchors = [a for a in anchors if a != "ctranslate2" or ctx.translator is not None]
    warm_up(ctx, anchors)
    rounds: dict[str, list[Measure]] = {a: [] for a in anchors}
    for number in range(case.repeats):
        for anchor in anchors:
            result = measure(ctx, anchor)
            rounds[anchor].append(result)
            log(
                f"{case.model} beams={case.beams} round {number + 1}: {anchor:12s} {result.seconds:8.2f} s "
                f"{result.dialogues / result.seconds:8.2f} dialogues/s"
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
        "environment": environment(ctx.threads),
    }


# ---------------------------------------------------------------------------- report


def markdown(results: list[dict[str, Any]], command: str) -> str:
    """One table row per case and anchor, and the command that reproduced it."""
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
    loads = sorted({str(r["environment"]["load_average"]) for r in results})
    case = results[0]["case"]
    note = (
        f"{len_records(results[0])} {case['source']} records (notebook: the first {NOTEBOOK_RECORDS}), "
        f"max_new_tokens {case['max_new_tokens']}, "
        f"{case['threads']} torch thread(s), batch_tokens {case['batch_tokens']}, best of {case['repeats']} "
        f"rounds; load average during the runs: {', '.join(loads)}."
    )
    return f"{markdown_table(headers, rows)}\n\n{note}\n\nReproduce: `{command}`\n"


def len_records(result: dict[str, Any]) -> int:
    return result["source_lengths"]["records"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mid", help="Comma list of tiny, mid, large")
    parser.add_argument("--records", type=int, default=0, help="Records per measurement (0: per-model default)")
    parser.add_argument("--beams", default="1,4", help="Comma list of beam sizes")
    parser.add_argument("--max-new-tokens", type=int, default=Case.max_new_tokens)
    parser.add_argument("--source", default="synthetic", help="synthetic, dialogsum (../shared/data) or a JSONL path")
    parser.add_argument("--threads", type=int, default=0, help="torch threads for every anchor; 0 = our auto choice")
    parser.add_argument("--batch-tokens", type=int, default=0, help="Token budget for ours and CTranslate2")
    parser.add_argument("--repeats", type=int, default=Case.repeats, help="Rounds; the best of each anchor counts")
    parser.add_argument("--anchors", default=",".join(ANCHORS), help=f"Comma list of {', '.join(ANCHORS)}")
    parser.add_argument("--name", default="", help="Result file name without suffix [default: throughput-MODELS]")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR, help="Where benchmark models are kept")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    from common import write_results

    args = parse_args(argv)
    anchors = [a for a in args.anchors.split(",") if a]
    unknown = set(anchors) - set(RUNNERS)
    if unknown:
        raise SystemExit(f"unknown anchors: {', '.join(sorted(unknown))}; known: {', '.join(ANCHORS)}")
    results = []
    for model in args.model.split(","):
        for beams in (int(b) for b in args.beams.split(",")):
            case = Case(
                model,
                beams,
                args.max_new_tokens,
                args.records,
                args.source,
                args.threads,
                args.batch_tokens,
                args.repeats,
            )
            results.append(run_case(case, anchors, args.work_dir, lambda line: print(line, file=sys.stderr)))
    command = "python bench/bench_throughput.py " + " ".join(sys.argv[1:] if argv is None else argv)
    table = markdown(results, command.strip())
    name = args.name or "throughput-" + args.model.replace(",", "-")
    write_results(name, {"command": command.strip(), "results": results}, table, args.output_dir)
    print(table)
    return results


if __name__ == "__main__":
    main()
