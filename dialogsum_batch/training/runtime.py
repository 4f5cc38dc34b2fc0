"""Process settings that must be in place before torch starts CUDA; this module never imports torch."""

from __future__ import annotations

import os
from collections.abc import MutableMapping

# Expandable segments let the CUDA caching allocator grow a block instead of fragmenting memory
# across batches of varying length; without them a long-tailed dataset can OOM with gigabytes
# free. torch reads PYTORCH_ALLOC_CONF since 2.9 and PYTORCH_CUDA_ALLOC_CONF before (and some
# 2.9 builds ignored the new name on CUDA), so both are set.
ALLOCATOR_VARIABLES = ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")
ALLOCATOR_SETTING = "expandable_segments:True"


def prepare_cuda_allocator(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set both allocator variables to expandable segments unless the user set them; return them.

    Call it before torch initialises CUDA (the first CUDA call, not ``import torch``);
    the task calls it before importing anything that imports torch.
    """
    env = os.environ if environ is None else environ
    return {name: env.setdefault(name, ALLOCATOR_SETTING) for name in ALLOCATOR_VARIABLES}
