"""Word-level tokenizer for the proxy CLIP's text tower.

The proxy world (see ``world.py``) has a closed vocabulary of a few dozen words, so a BPE
tokenizer like CLIP's would only waste embedding rows. open_clip's text tower pools the feature
at ``argmax`` of the token ids, so the end-of-text token gets the highest id, as in CLIP's BPE.
"""

from __future__ import annotations

import re

import torch

from clbench.scenarios.proxy.world import vocabulary

_WORD = re.compile(r"[a-z]+|[^\sa-z]")


class ProxyTokenizer:
    """``tokenizer(texts) -> LongTensor [N, context_length]``; unknown words map to ``<unk>``."""

    PAD, SOT, UNK = 0, 1, 2

    def __init__(self, context_length: int = 20) -> None:
        self.context_length = context_length
        self.words = vocabulary()
        self.index = {w: i + 3 for i, w in enumerate(self.words)}
        self.eot = len(self.words) + 3
        self.vocab_size = self.eot + 1

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
