"""``python -m dialogsum_batch.training``: fine-tune from the shell, or on every process of
``accelerate launch -m dialogsum_batch.training``; the options of ``invoke finetune`` (``options.OPTIONS``)
but the launch ones.

    python -m dialogsum_batch.training --preset smoke --output-dir runs/smoke
    accelerate launch -m dialogsum_batch.training --preset pegasus-samsum --output-dir runs/pegasus
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .options import add_arguments, run_finetune

EXAMPLES = """examples:
  python -m dialogsum_batch.training --preset smoke --output-dir runs/smoke
  python -m dialogsum_batch.training --output-dir runs/pegasus --set learning_rate=5e-5 --set num_train_epochs=3
  accelerate launch -m dialogsum_batch.training --preset pegasus-samsum --output-dir runs/pegasus
"""


def parser() -> argparse.ArgumentParser:
    """The module's argument parser, built from the option table."""
    made = argparse.ArgumentParser(
        prog="python -m dialogsum_batch.training",
        description="Fine-tune Pegasus on SAMSum-style chats.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return add_arguments(made)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, train, print the run folder on stdout; errors as one line on stderr. Returns the exit code."""
    outcome = run_finetune(vars(parser().parse_args(argv)))
    if outcome.code:
        print(outcome.text, file=sys.stderr)
    elif os.environ.get("RANK", "0") == "0":  # one line on stdout, not one per process
        print(outcome.text)
    return outcome.code


if __name__ == "__main__":
    sys.exit(main())
