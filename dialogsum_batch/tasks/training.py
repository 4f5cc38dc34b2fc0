"""Fine-tuning task: ``invoke finetune``, a thin wrapper around dialogsum_batch.training.trainer."""

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
    "num_processes": "Train on N processes (one per GPU) through accelerate launch (DDP)",
    "accelerate_config": "accelerate config file (FSDP, DeepSpeed, several machines) for accelerate launch",
}


@register(help=HELP, iterable=["set_"])
def finetune(c, preset=None, output_dir=None, config=None, resume=False, data=None, base_model=None,
             max_steps=None, set_=None, num_processes=None, accelerate_config=None):
    """Fine-tune Pegasus on SAMSum-style chats (Seq2SeqTrainer: ROUGE-picked best checkpoint, resume).

    Examples:
      invoke finetune --preset smoke --output-dir runs/smoke
      invoke finetune --output-dir runs/pegasus --set learning_rate=5e-5 --set num_train_epochs=3
      invoke finetune --config my-run.yaml --resume
      invoke finetune --num-processes 8 --output-dir runs/pegasus
      invoke finetune --accelerate-config fsdp.yaml --output-dir runs/pegasus
    """
    prepare_cuda_allocator()  # before anything below imports torch
    if num_processes is not None or accelerate_config:
        options = _options(preset, output_dir, config, resume, data, base_model, max_steps, set_ or ())
        _launch(c, options, num_processes, accelerate_config)
        return
    from ..errors import DialogsumError
    from ..training.trainer import finetune as run
    from ..training.config import cli_overrides, load_train_config

    try:
        overrides = cli_overrides(output_dir, data, base_model, max_steps, resume, set_ or ())
        run_dir = run(load_train_config(preset, config, overrides))
    except DialogsumError as exc:
        raise Exit(f"error: {exc}", code=exc.exit_code) from None
    except KeyboardInterrupt:
        raise Exit("interrupted: run again with --resume to continue from the last checkpoint", code=130) from None
    print(run_dir)


def _options(preset, output_dir, config, resume, data, base_model, max_steps, assignments) -> list[str]:
    """The task's options as ``python -m dialogsum_batch.training`` takes them."""
    named = {"--preset": preset, "--output-dir": output_dir, "--config": config, "--data": data,
             "--base-model": base_model, "--max-steps": max_steps}
    options = [part for flag, value in named.items() if value not in (None, "") for part in (flag, str(value))]
    options += ["--resume"] if resume else []
    return options + [part for item in assignments for part in ("--set", str(item))]


def _launch(c, options: list[str], num_processes, accelerate_config) -> None:
    """Run the training module on every process of ``accelerate launch``; its exit code is the task's."""
    from ..inference.parallel import launch_command, shell_line

    count = None if num_processes is None else int(num_processes) if str(num_processes).isdigit() else 0
    if count is not None and count < 1:
        raise Exit(f"error: --num-processes must be a whole number of at least 1, got {num_processes}", code=2)
    command = launch_command("dialogsum_batch.training", options, count, accelerate_config)
    result = c.run(shell_line(command), warn=True, pty=False, in_stream=False)  # training reads no stdin
    if result is not None and result.exited:
        raise Exit(f"error: accelerate launch exited with {result.exited}", code=result.exited)
