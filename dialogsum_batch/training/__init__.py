"""Everything for fine-tuning: the config and its presets, the training data, the trainer, run-folder
reports, process settings, and the one option table both commands are built from.

``trainer`` puts the pieces together around ``Seq2SeqTrainer``; ``options`` is the command line
(``python -m dialogsum_batch.training`` and ``invoke finetune``); ``launch`` the ``accelerate launch``
line that runs it on several processes.
"""

from .config import TrainConfig
from .presets import load_train_config
from .runtime import prepare_cuda_allocator

__all__ = ["TrainConfig", "load_train_config", "prepare_cuda_allocator"]
