"""The proxy data sets: target (``proxy``) and its two controls, as tensors.

Mirrors the LoRSU paper's protocol (Imperfect Vision Encoders): ``proxy`` is the target domain
(TSI's home-camera frames: known classes seen through one fixed, poor camera), ``proxy-clean``
the same classes rendered cleanly (the paper's DALL-E control) and ``proxy-generic`` other
classes rendered cleanly (the ImageNet control). Every split is rendered from a fixed seed with a
local generator, so the same call gives bit-identical tensors in any process.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch

from clbench.scenarios.proxy.world import (
    CAMERA,
    CLEAN,
    GENERIC_CLASSES,
    TARGET_CLASSES,
    TEMPLATES,
    Domain,
    render_classes,
)

PROXY_TEMPLATES: list[str] = list(TEMPLATES)

# dataset -> split -> (classes, domain, images per class, seed)
_SPLITS: dict[str, dict[str, tuple[tuple[str, ...], Domain, int, int]]] = {
    "proxy": {
        "train": (TARGET_CLASSES, CAMERA, 100, 1001),
        "test": (TARGET_CLASSES, CAMERA, 30, 1002),
    },
    "proxy-clean": {"test": (TARGET_CLASSES, CLEAN, 30, 2002)},
    "proxy-generic": {"test": (GENERIC_CLASSES, CLEAN, 15, 3002)},
}


@dataclass(frozen=True)
class ProxySplit:
    """One split: unnormalised images in [0, 1], labels indexing ``class_names``, stable ids."""

    images: torch.Tensor
    targets: torch.Tensor
    class_names: list[str]
    templates: list[str]
    sample_ids: list[str]

    def __len__(self) -> int:
        return int(self.targets.shape[0])


def valid_splits() -> dict[str, tuple[str, ...]]:
    return {name: tuple(splits) for name, splits in _SPLITS.items()}


@cache
def make_split(dataset: str, split: str) -> ProxySplit:
    """Render ``dataset``'s ``split`` (cached in-process; callers must not modify the tensors)."""
    if dataset not in _SPLITS or split not in _SPLITS[dataset]:
        valid = ", ".join(f"{d}/{s}" for d, ss in valid_splits().items() for s in ss)
        raise ValueError(f"unknown proxy split {dataset!r}/{split!r}; valid: {valid}")
    classes, domain, per_class, seed = _SPLITS[dataset][split]
    images, targets = render_classes(classes, per_class, domain, seed)
    ids = [f"{dataset}/{split}/{i:06d}" for i in range(len(targets))]
    return ProxySplit(images, targets, list(classes), list(PROXY_TEMPLATES), ids)
