"""Fine-tuning pieces: the config, training data, run-folder reports and process settings.

``dialogsum_batch.training.trainer`` puts them together around ``Seq2SeqTrainer``.
"""

from .config import TrainConfig, load_train_config
from .runtime import prepare_cuda_allocator

__all__ = ["TrainConfig", "load_train_config", "prepare_cuda_allocator"]
