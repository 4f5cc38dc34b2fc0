"""``python -m dialogsum_batch.training``: fine-tune from the shell, or on every process of
``accelerate launch -m dialogsum_batch.training``; the same options as ``invoke finetune``.

\b
    python -m dialogsum_batch.training --preset smoke --output-dir runs/smoke
    accelerate launch -m dialogsum_batch.training --preset pegasus-samsum --output-dir runs/pegasus
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .runtime import prepare_cuda_allocator


def parser() -> argparse.ArgumentParser:
    made = argparse.ArgumentParser(prog="python -m dialogsum_batch.training",
                                   description="Fine-tune Pegasus on SAMSum-style chats.")
    made.add_argument("--preset", help="pegasus-samsum (default) or smoke")
    made.add_argument("--config", help="YAML or JSON file of settings")
    made.add_argument("--output-dir", help="the run folder")
    made.add_argument("--data", help="corpus: path, URL or Hub id (see dialogsum_batch.corpora)")
    made.add_argument("--base-model", help="Hub id, local folder, or 'tiny'")
    made.add_argument("--max-steps", help="optimizer steps (overrides epochs)")
    made.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    made.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any setting; repeatable")
    return made


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, train, print the run folder on stdout; errors as one line on stderr."""
    args = parser().parse_args(argv)
    prepare_cuda_allocator()  # before the import below pulls torch in
    from ..errors import DialogsumError
    from .trainer import finetune
    from .config import cli_overrides, load_train_config

    try:
        overrides = cli_overrides(args.output_dir, args.data, args.base_model, args.max_steps, args.resume, args.set)
        run_dir = finetune(load_train_config(args.preset, args.config, overrides))
    except DialogsumError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: run again with --resume to continue from the last checkpoint", file=sys.stderr)
        return 130
    if os.environ.get("RANK", "0") == "0":  # one line on stdout, not one per process
        print(run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
