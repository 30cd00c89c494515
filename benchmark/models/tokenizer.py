"""Word-level tokenizer for text towers with a small closed vocabulary (the proxy CLIP's).

The proxy world has a closed vocabulary of a few dozen words, so a BPE tokenizer like CLIP's would
only waste embedding rows. The word list is data beside the model config
(`model_configs/<arch>.vocab.json`, written by the pretraining from the world's vocabulary).
open_clip's text tower pools the feature at ``argmax`` of the token ids, so the end-of-text token
gets the highest id, as in CLIP's BPE.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import torch

from clbench.backbones import PROXY_ARCH
from clbench.models.configs import config_path, read_vocabulary

_WORD = re.compile(r"[a-z]+|[^\sa-z]")


class WordTokenizer:
    """``tokenizer(texts) -> LongTensor [N, context_length]``; unknown words map to ``<unk>``."""

    PAD, SOT, UNK = 0, 1, 2

    def __init__(self, words: Sequence[str], context_length: int) -> None:
        self.context_length = context_length
        self.words = list(words)
        self.index = {w: i + 3 for i, w in enumerate(self.words)}
        self.eot = len(self.words) + 3
        self.vocab_size = self.eot + 1

    @classmethod
    def for_arch(cls, arch: str) -> WordTokenizer | None:
        """The tokenizer of one of clbench's word-level architectures, or None."""
        words = read_vocabulary(arch)
        if words is None:
            return None
        text_cfg = json.loads(config_path(arch).read_text())["text_cfg"]
        tok = cls(words, text_cfg["context_length"])
        if tok.vocab_size != text_cfg["vocab_size"]:
            raise ValueError(f"{arch}: {len(words)} words need vocab_size {tok.vocab_size} in the "
                             f"model config, not {text_cfg['vocab_size']}")
        return tok

    def encode(self, text: str) -> list[int]:
        return [self.index.get(w, self.UNK) for w in _WORD.findall(text.lower())]

    def __call__(self, texts: str | list[str]) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        out = torch.full((len(texts), self.context_length), self.PAD, dtype=torch.long)
        for i, text in enumerate(texts):
            # Truncate so the end token always survives: the text tower pools there.
            ids = [self.SOT, *self.encode(text)][: self.context_length - 1] + [self.eot]
            out[i, : len(ids)] = torch.tensor(ids)
        return out


class ProxyTokenizer(WordTokenizer):
    """The proxy CLIP's tokenizer (its packaged vocabulary and context length)."""

    def __init__(self) -> None:
        tok = WordTokenizer.for_arch(PROXY_ARCH)
        assert tok is not None, f"{PROXY_ARCH}: the vocabulary file is missing"
        super().__init__(tok.words, tok.context_length)
