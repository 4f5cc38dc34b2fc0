"""``accelerate launch`` behind ``dialogsum-batch finetune --num-processes`` / ``--accelerate-config``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError

COMMAND_MODULE = "dialogsum_batch"  # python -m dialogsum_batch: the command, run on every launched process


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


def launch_finetune(options: Mapping[str, Any]) -> int:
    """``dialogsum-batch finetune`` on every process of ``accelerate launch``; the launcher's exit code.

    The launch options (``--num-processes``, ``--accelerate-config``) are the caller's; every process runs
    the same subcommand with the other options, and the training itself is ``finetune_run`` there.
    """
    from .options import module_arguments

    raw = options.get("num_processes")
    count = None if raw in (None, "") else int(raw) if str(raw).isdigit() else 0
    if count is not None and count < 1:
        raise ConfigError(f"--num-processes must be a whole number of at least 1, got {raw}")
    command = launch_command(
        COMMAND_MODULE, ["finetune", *module_arguments(options)], count, options.get("accelerate_config")
    )
    return subprocess.run(command, stdin=subprocess.DEVNULL).returncode  # training reads no stdin


def launched(options: Mapping[str, Any]) -> bool:
    """Whether the options ask for ``accelerate launch`` rather than a run in this process."""
    return options.get("num_processes") not in (None, "") or bool(options.get("accelerate_config"))
