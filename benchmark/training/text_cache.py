"""Text heads computed once: caption embeddings kept on disk across runs.

A head's embeddings (every class × prompt template caption; ImageNet's 1000 classes × 80
templates are 80k captions through the text tower) depend only on the text tower's weights, the
caption tokens and the numerics; while the text side is frozen (the default, `towers=vision`)
they are the same in every session of every run of the model. `CLIPClassifier` computes the key
(the sha256 of the text tower's weights, the tokens, device type and autocast dtype) and asks
this store; entries live in memory for the run and in the `text/` subfolder of the cache folder
(`clbench.caches`) for later runs, with the sha256 of their values: a corrupt entry is detected,
reported and computed again.
"""

from __future__ import annotations

from pathlib import Path

import torch

from clbench.caches import CacheArea, load_tensors, save_tensors


class TextHeadCache:
    """The `TextStore` of a run (`CLIPClassifier.text_store`)."""

    def __init__(self, base: Path | None):
        self.area = CacheArea(base, "text")
        self.memory: dict[str, torch.Tensor] = {}
        self.read = 0  # entries read from disk (computed by an earlier run)
        self.computed = 0

    def get(self, key: str) -> torch.Tensor | None:
        if key in self.memory:
            return self.memory[key]
        entry = load_tensors(self.area, key, "text head")
        if entry is None:
            return None
        self.read += 1
        self.memory[key] = entry[0]["features"]
        return self.memory[key]

    def put(self, key: str, features: torch.Tensor) -> None:
        self.computed += 1
        self.memory[key] = features
        save_tensors(self.area, key, {"features": features})
