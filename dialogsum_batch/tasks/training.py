"""Fine-tuning task: ``invoke finetune``, a thin wrapper around dialogsum_batch.finetune."""

from __future__ import annotations

from invoke.exceptions import Exit

from ..training.runtime import prepare_cuda_allocator
from . import register

HELP = {
    "preset": "Recipe to start from: pegasus-samsum (GPU, the default) or smoke (tiny model, CPU, ~1 min)",
    "output_dir": "Run folder: final model, checkpoints, metrics, plot, model card",
    "config": "YAML or JSON file of settings, applied over the preset",
    "resume": "Continue from the last checkpoint in the run folder",
    "data": "Corpus: corpus.7z, save_to_disk folder, CSV/JSON/JSONL/Parquet file, URL or Hub id",
    "base_model": "Model to fine-tune: Hub id, local folder, or 'tiny'",
    "max_steps": "Optimizer steps; overrides the number of epochs",
    "set": "Any setting as KEY=VALUE, e.g. --set learning_rate=5e-5 (repeatable)",
}


@register(help=HELP, iterable=["set_"])
def finetune(c, preset=None, output_dir=None, config=None, resume=False, data=None, base_model=None,
             max_steps=None, set_=None):
    """Fine-tune Pegasus on SAMSum-style chats (Seq2SeqTrainer: ROUGE-picked best checkpoint, resume).

    Examples:
      invoke finetune --preset smoke --output-dir runs/smoke
      invoke finetune --output-dir runs/pegasus --set learning_rate=5e-5 --set num_train_epochs=3
      invoke finetune --config my-run.yaml --resume
    """
    prepare_cuda_allocator()  # before anything below imports torch
    from ..errors import DialogsumError
    from ..finetune import finetune as run
    from ..training.config import cli_overrides, load_train_config

    try:
        overrides = cli_overrides(output_dir, data, base_model, max_steps, resume, set_ or ())
        run_dir = run(load_train_config(preset, config, overrides))
    except DialogsumError as exc:
        raise Exit(f"error: {exc}", code=exc.exit_code) from None
    except KeyboardInterrupt:
        raise Exit("interrupted: run again with --resume to continue from the last checkpoint", code=130) from None
    print(run_dir)
