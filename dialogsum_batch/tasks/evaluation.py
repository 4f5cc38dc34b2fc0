"""``invoke evaluate``: ROUGE of a model and/or an extractive baseline on a corpus split."""

from __future__ import annotations

from invoke.exceptions import Exit

from ..config import EVAL_BOOTSTRAP, EVAL_OUTPUT_DIR, EVAL_SPLIT, default_of
from . import register

HELP = {
    "model": "Model folder (transformers or CTranslate2); leave out to evaluate --baseline alone",
    "data": "Corpus: a file, a folder, corpus.7z, a save_to_disk folder or a Hub id (see load_corpus)",
    "split": "Split to evaluate (train / validation / test); a single file is taken as this split",
    "output_dir": "Folder for predictions.jsonl, metrics.json, report.md and rouge_by_length.png",
    "baseline": "Extractive baseline: lead3 or longest3 (with --model, reported side by side)",
    "num_beams": "Beam size [default: the model's]",
    "max_new_tokens": "Summary length cap in tokens [default: the model's]",
    "length_penalty": "Beam length penalty [default: the model's]",
    "batch_tokens": "Padded source tokens per batch",
    "device": "auto, cpu, cuda or cuda:N",
    "backend": "auto (on the CPU CTranslate2 float32, converted once into the cache), transformers or ctranslate2",
    "quantization": "CTranslate2 weights for that conversion: float32 (default, transformers' summaries), int8, ...",
    "limit": "Evaluate only the first N records of the split",
    "bootstrap": "Bootstrap resamples for the 95% intervals",
    "seed": "Seed of the bootstrap resampling",
    "allow_pickle": "Load pickle (*.bin) weights when the model has no safetensors",
    "force": "Write into a non-empty --output-dir (an earlier evaluation's files)",
}


def _number(value, kind):
    """Invoke passes options without a typed default as strings; None and "" mean unset."""
    return None if value in (None, "") else kind(value)


@register(help=HELP)
def evaluate(
    c,
    data="",
    model=None,
    split=EVAL_SPLIT,
    output_dir=EVAL_OUTPUT_DIR,
    baseline=None,
    num_beams=None,
    max_new_tokens=None,
    length_penalty=None,
    batch_tokens=default_of("batch_tokens"),
    device=default_of("device"),
    backend=default_of("backend"),
    limit=None,
    bootstrap=EVAL_BOOTSTRAP,
    seed=0,
    allow_pickle=False,
    quantization=None,
    force=False,
):
    """Score a model and/or a baseline with ROUGE (mean, 95% bootstrap interval) and write a report.

    invoke evaluate --model runs/pegasus-samsum --data corpus.7z --output-dir runs/eval --baseline longest3
    invoke evaluate --baseline lead3 --data dialogsum.dev.jsonl --output-dir runs/lead3
    invoke evaluate --model runs/pegasus-samsum --data corpus.7z --backend ctranslate2 --quantization int8
    """
    from ..errors import DialogsumError
    from ..evaluation import evaluate as run_evaluation
    from ..evaluation import format_line, make_settings
    from ..logs import Log, library_bars

    if not data:
        raise Exit("evaluate: --data is required (a corpus file, folder or archive)", code=2)
    settings = make_settings(
        model,
        backend=backend,
        device=device,
        num_beams=_number(num_beams, int),
        max_new_tokens=_number(max_new_tokens, int),
        length_penalty=_number(length_penalty, float),
        batch_tokens=int(batch_tokens),
        allow_pickle=bool(allow_pickle),
        quantization=quantization or None,
    )
    try:
        with library_bars():  # Hub downloads show no bars under cron or CI
            metrics = run_evaluation(
                model or None,
                data,
                split,
                output_dir,
                baseline or None,
                settings,
                limit=_number(limit, int),
                bootstrap=int(bootstrap),
                seed=int(seed),
                log=Log().info,
                overwrite=bool(force),
            )
    except DialogsumError as exc:
        raise Exit(f"error: {exc}", code=exc.exit_code) from exc
    print(format_line(metrics))
    return metrics
