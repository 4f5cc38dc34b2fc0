"""``dialogsum-batch evaluate``: ROUGE of a model and/or an extractive baseline on a corpus split."""

from __future__ import annotations

from typing import Any

import click

from ..backends.ct2_convert import QUANTIZATIONS
from ..baselines import BASELINES
from ..config import EVAL_BOOTSTRAP, EVAL_OUTPUT_DIR, EVAL_SPLIT
from ..logs import library_bars
from .common import CONTEXT, command_log, errors_shown, log_options, setting_option


@click.command("evaluate", context_settings=CONTEXT)
@click.option(
    "--data",
    required=True,
    metavar="SOURCE",
    help="Corpus: a file, a folder, corpus.7z, a save_to_disk folder or a Hub id.",
)
@click.option("--model", "-m", help="Model folder or Hub id; leave out to evaluate --baseline alone.")
@click.option("--split", default=EVAL_SPLIT, help="Split to evaluate; a single file is taken as this split.")
@click.option("--output-dir", default=EVAL_OUTPUT_DIR, type=click.Path(file_okay=False), help="Report folder.")
@click.option(
    "--baseline", type=click.Choice(sorted(BASELINES)), help="Extractive baseline, side by side with --model."
)
@setting_option("--num-beams", type=click.IntRange(1))
@setting_option("--max-new-tokens", type=click.IntRange(1))
@setting_option("--length-penalty", type=float)
@setting_option("--batch-tokens", type=click.IntRange(1))
@setting_option("--device")
@setting_option("--backend")
@setting_option("--quantization", type=click.Choice(QUANTIZATIONS))
@click.option("--limit", type=click.IntRange(1), help="Evaluate only the first N records of the split.")
@click.option("--bootstrap", default=EVAL_BOOTSTRAP, type=click.IntRange(1), help="Resamples for 95% intervals.")
@click.option("--seed", default=0, type=int, help="Seed of the bootstrap resampling.")
@setting_option("--allow-pickle", is_flag=True)
@click.option("--force", is_flag=True, help="Write into a non-empty --output-dir (an earlier evaluation's files).")
@log_options
def evaluate(**options: Any) -> None:
    """Score a model and/or a baseline with ROUGE (mean, 95% bootstrap interval) and write a report.

    Writes predictions.jsonl, metrics.json, report.md and rouge_by_length.png into --output-dir and
    prints one line of ROUGE on stdout.

    \b
      dialogsum-batch evaluate --model runs/pegasus-samsum --data corpus.7z --baseline longest3
      dialogsum-batch evaluate --baseline lead3 --data dialogsum.dev.jsonl --output-dir runs/lead3
    """
    from ..evaluation import evaluate as run_evaluation
    from ..evaluation import format_line, make_settings

    log = command_log(options)
    settings_options = ("backend", "device", "num_beams", "max_new_tokens", "length_penalty", "batch_tokens")
    settings = make_settings(
        options["model"],
        allow_pickle=options["allow_pickle"],
        quantization=options["quantization"],
        **{name: options[name] for name in settings_options},
    )
    with errors_shown(log, options["debug"]), library_bars(show=False if options["quiet"] else None):
        metrics = run_evaluation(
            options["model"],
            options["data"],
            options["split"],
            options["output_dir"],
            options["baseline"],
            settings,
            limit=options["limit"],
            bootstrap=options["bootstrap"],
            seed=options["seed"],
            log=log.info,
            overwrite=options["force"],
        )
        click.echo(format_line(metrics))
