"""Fine-tuning task: ``invoke finetune``, built from dialogsum_batch.training.options' option table."""

from __future__ import annotations

from typing import Any

from invoke.exceptions import Exit

from ..errors import DialogsumError
from ..training.launch import launch_finetune, launched
from ..training.options import INTERRUPTED, TASK_DEFAULTS, TASK_HELP, TASK_ITERABLE, finetune_run
from ..training.runtime import prepare_cuda_allocator
from . import register, takes_options


@register(help=TASK_HELP, iterable=TASK_ITERABLE)
@takes_options(TASK_DEFAULTS)
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
    try:
        if launched(options):
            code = launch_finetune(options)
            if code:
                raise Exit(f"error: accelerate launch exited with {code}", code=code)
            return
        print(finetune_run(options))
    except DialogsumError as exc:
        raise Exit(f"error: {exc}", code=exc.exit_code) from exc
    except KeyboardInterrupt:
        raise Exit(INTERRUPTED, code=130) from None
