"""``python -m dialogsum_batch`` runs the same command as the ``dialogsum-batch`` script."""

from .cli import run

run()
