"""The ``accelerate launch`` command line behind ``invoke finetune --num-processes`` / ``--accelerate-config``."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence


def launch_command(
    module: str,
    arguments: Sequence[str],
    num_processes: int | None = None,
    config_file: str | None = None,
    cuda: bool | None = None,
) -> list[str]:
    """``accelerate launch [...] -m MODULE ARGS`` for ``num_processes`` processes and/or an accelerate config.

    accelerate's launcher runs from this interpreter (``python -m accelerate.commands.launch``), so an
    environment whose ``bin`` is not on PATH still launches its own packages.

    A config file decides the kind of launch (DDP, FSDP, DeepSpeed, machines, port) itself. Without one,
    several processes mean ``--multi_gpu`` (torchrun underneath: NCCL on GPUs, gloo on CPU, where
    ``accelerate launch --cpu`` would start one process only), one process on a CPU host ``--cpu``, and
    the rendezvous takes a free port, so two runs on one machine do not collide on 29500.
    """
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if config_file:
        command += ["--config_file", config_file]
    if num_processes is not None:
        command += ["--num_processes", str(num_processes)]
    if not config_file:
        if cuda is None:
            import torch

            cuda = torch.cuda.is_available()
        many = (num_processes or 1) > 1
        command += ["--multi_gpu", "--main_process_port", "0"] if many else [] if cuda else ["--cpu"]
        # Precision is the Trainer's (TrainConfig.bf16); naming the defaults keeps accelerate from warning.
        command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    return command + ["-m", module, *arguments]


def shell_line(command: Sequence[str]) -> str:
    """``command`` as one shell line, each part quoted where it needs to be."""
    return " ".join(shlex.quote(part) for part in command)
