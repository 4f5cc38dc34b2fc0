"""A Pegasus tokenizer read from ``tokenizer.json`` with the ``tokenizers`` library alone, without transformers.

Importing transformers (and through it torch) costs a CTranslate2 process ~2.7 s before its first
summary; serving needs only what the ``tokenizers`` library does with ``tokenizer.json``. transformers 5's
Pegasus tokenizer is that same file (``"backend": "tokenizers"``): it encodes with the file's post-processor
(``</s>`` appended), truncates on the right counting that token, and decodes with the file's decoder,
skipping the tokens the file marks special. This class does the same, so ids and text match
``AutoTokenizer`` (tests/test_ct2_default.py checks it); a folder written any other way loads through
transformers instead (``load_light_tokenizer`` returns None).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..modelfiles import read_json

# Tokenizer classes whose transformers 5 implementation is tokenizer.json and nothing more.
PLAIN_CLASSES = frozenset({"PegasusTokenizer", "PegasusTokenizerFast"})
# transformers' ``clean_up_tokenization`` (tokenization_utils_base), for folders that turn it on.
CLEANUPS = (
    (" .", "."),
    (" ?", "?"),
    (" !", "!"),
    (" ,", ","),
    (" ' ", "'"),
    (" n't", "n't"),
    (" 'm", "'m"),
    (" 's", "'s"),
    (" 've", "'ve"),
    (" 're", "'re"),
)


class LightTokenizer:
    """The part of a transformers tokenizer the CTranslate2 backend uses, on a ``tokenizers.Tokenizer``."""

    def __init__(self, tokenizer: Any, eos_token: str, clean_up: bool = False):
        self.tokenizer = tokenizer
        self.eos_token = eos_token
        self.eos_token_id = tokenizer.token_to_id(eos_token)
        self.unk_token_id = tokenizer.token_to_id("<unk>")
        self.clean_up = clean_up
        self.truncation: int | None = None
        tokenizer.no_padding()
        tokenizer.no_truncation()

    def __call__(
        self, texts: Sequence[str], truncation: bool = False, max_length: int | None = None, **_: Any
    ) -> dict[str, list[list[int]]]:
        """``{"input_ids": [...]}`` as ``tokenizer(texts, truncation=True, max_length=N)`` gives it."""
        limit = max_length if truncation else None
        if limit != self.truncation:  # set once per limit: encoding runs on one thread, decoding never truncates
            if limit is None:
                self.tokenizer.no_truncation()
            else:
                self.tokenizer.enable_truncation(limit, stride=0, strategy="longest_first", direction="right")
            self.truncation = limit
        return {"input_ids": [row.ids for row in self.tokenizer.encode_batch(list(texts), add_special_tokens=True)]}

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        return [self.tokenizer.id_to_token(i) for i in ids]

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> list[int]:
        found = (self.tokenizer.token_to_id(token) for token in tokens)
        return [self.unk_token_id if i is None else i for i in found]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        text = self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)
        if self.clean_up:
            for before, after in CLEANUPS:
                text = text.replace(before, after)
        return text


def load_light_tokenizer(path: str) -> LightTokenizer | None:
    """The folder's tokenizer without transformers, or None when only transformers can read it faithfully."""
    folder = Path(path)
    config = read_json(folder / "tokenizer_config.json")
    if not (folder / "tokenizer.json").is_file() or not isinstance(config, dict):
        return None
    if config.get("tokenizer_class") not in PLAIN_CLASSES or config.get("backend", "tokenizers") != "tokenizers":
        return None
    eos = config.get("eos_token", "</s>")
    if not isinstance(eos, str):
        return None
    try:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception:  # tokenizers raises plain Exceptions: a file only transformers' loader can read
        return None
    if tokenizer.token_to_id(eos) is None:
        return None
    return LightTokenizer(tokenizer, eos, bool(config.get("clean_up_tokenization_spaces", False)))
