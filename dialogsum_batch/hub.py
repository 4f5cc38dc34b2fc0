"""The Hugging Face Hub as this project meets it: what an id looks like, whether the Hub answers, and the
known places data lives (SAMSum's own archive, mirrors of ids that vanished)."""

from __future__ import annotations

import re

# "org/name", or a legacy bare name ("t5-small"): what the Hub accepts as a model or dataset id.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")

# The SAMSum authors' archive (train.json, val.json, test.json), as the paper's arXiv source ships it.
SAMSUM_CORPUS_URL = "https://arxiv.org/src/1911.12237v2/anc/corpus.7z"
