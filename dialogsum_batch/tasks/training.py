"""Fine-tuning task: ``invoke finetune``, built from dialogsum_batch.training.options' option table."""

from __future__ import annotations

from typing import Any

from invoke.exceptions import Exit

from ..training.launch import launch_command, shell_line
from ..training.options import TASK_HELP, TASK_ITERABLE, module_arguments, run_finetune, takes_options
from ..training.runtime import prepare_cuda_allocator
from . import register


@register(help=TASK_HELP, iterable=TASK_ITERABLE)
@takes_options
def finetune(c, options: dict[str, Any]) -> None:
    """Fine-tune Pegasus on SAMSum-style chats (Seq2SeqTrainer: ROUGE-picked best checkpoint, resume).

    Examples:
      invoke finetune --preset smoke --output-dir runs/smoke
      invoke finetune --output-dir runs/pegasus --set learning_rate=5e-5 --set num_train_epochs=3
      invoke finetune --config my-run.yaml --resume
      invoke finetune --num-processes 8 --output-dir runs/pegasus
      invoke finetune --accelerate-config fsdp.yaml --output-dir runs/pegasus
    """
    prepare_cuda_allocator()  # before anything below imports torch; launched processes inherit it
    if options["num_processes"] is not None or options["accelerate_config"]:
        _launch(c, module_arguments(options), options["num_processes"], options["accelerate_config"])
        return
    outcome = run_finetune(options)
    if outcome.code:
        raise Exit(outcome.text, code=outcome.code)
    print(outcome.text)


def _launch(c, arguments: list[str], num_processes: str | None, accelerate_config: str | None) -> None:
    """Run the training module on every process of ``accelerate launch``; its exit code is the task's."""
    count = None if num_processes is None else int(num_processes) if str(num_processes).isdigit() else 0
    if count is not None and count < 1:
        raise Exit(f"error: --num-processes must be a whole number of at least 1, got {num_processes}", code=2)
    command = launch_command("dialogsum_batch.training", arguments, count, accelerate_config)
    result = c.run(shell_line(command), warn=True, pty=False, in_stream=False)  # training reads no stdin
    if result is not None and result.exited:
        raise Exit(f"error: accelerate launch exited with {result.exited}", code=result.exited)
