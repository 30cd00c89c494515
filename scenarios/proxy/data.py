"""The proxy data sets as tensors: two targets (``proxy``, ``proxy-hand``) and their controls.

Mirrors the LoRSU paper's protocol (Imperfect Vision Encoders): a target domain where the
pretrained model is poor (TSI's home camera) and controls it was good on (DALL-E, ImageNet).

- ``proxy``: 20 known shape classes through one fixed, degrading camera (``world.CAMERA``);
  controls ``proxy-clean`` (the same classes rendered cleanly: the DALL-E analogue) and
  ``proxy-generic`` (40 other shape classes, clean: the ImageNet analogue).
- ``proxy-night``: 20 of the generic shape classes through a night camera (``world.NIGHT``):
  the fourth domain of the multi-dataset stream ``proxy-mtil``, beside ``proxy``, ``proxy-hand``
  and ``proxy-glyphs``.
- ``proxy-hand``: real handwritten digits (scikit-learn's ``load_digits``, ``handwriting.py``);
  controls ``proxy-printed`` (the ten digits printed in TrueType fonts: the DALL-E analogue) and
  ``proxy-glyphs`` (24 printed capital letters: the ImageNet analogue).

Every rendered split comes from its own fixed seed with a local generator (``val`` and ``test``
of a control are different renders), so the same call gives bit-identical tensors in any
process; ``proxy-hand``'s train / val / test are disjoint index sets of load_digits.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch

from clbench.scenarios.proxy import handwriting
from clbench.scenarios.proxy.glyphs import DIGIT_CLASSES, LETTER_CLASSES, render_glyphs
from clbench.scenarios.proxy.world import (
    CAMERA,
    CLEAN,
    GENERIC_CLASSES,
    NIGHT,
    TARGET_CLASSES,
    TEMPLATES,
    Domain,
    render_classes,
)

PROXY_TEMPLATES: list[str] = list(TEMPLATES)


@dataclass(frozen=True)
class SplitSpec:
    """How a split is made: ``kind`` shapes (rendered through ``domain``), glyphs (printed) or
    hand (load_digits); ``per_class`` renders per class from ``seed`` (unused for hand)."""

    kind: str
    classes: tuple[str, ...]
    domain: Domain | None = None
    per_class: int = 0
    seed: int = 0


def _shapes(classes, domain, per_class, seed) -> SplitSpec:
    return SplitSpec("shapes", tuple(classes), domain, per_class, seed)


def _glyphs(classes, per_class, seed) -> SplitSpec:
    return SplitSpec("glyphs", tuple(classes), None, per_class, seed)


# every other generic class: 20 shapes the target set does not use
NIGHT_CLASSES: tuple[str, ...] = GENERIC_CLASSES[::2]

_HAND = {s: SplitSpec("hand", DIGIT_CLASSES) for s in ("train", "val", "test")}

# dataset -> split -> how to make it. Seeds are distinct across all rendered splits.
# The glyph controls' train splits (the replay pool) hold 2,000 digits and 2,400 letters, so
# that joint-replay on proxy-hand-offline (about 1,000 scans, replay_ratio up to 3) draws each
# replayed image at most once instead of cycling 1,200. The controls' val splits are as large
# as their test splits: `clbench tune` compares control changes of a few points, which 240
# images do not resolve (proxy-glyphs at 10 per class showed -2.1 points on val where test
# showed -5.2, for joint-replay on proxy-hand-offline).
_SPLITS: dict[str, dict[str, SplitSpec]] = {
    "proxy": {
        "train": _shapes(TARGET_CLASSES, CAMERA, 100, 1001),
        "val": _shapes(TARGET_CLASSES, CAMERA, 10, 1003),
        "test": _shapes(TARGET_CLASSES, CAMERA, 30, 1002),
    },
    "proxy-clean": {
        "train": _shapes(TARGET_CLASSES, CLEAN, 50, 2001),  # replayed by joint-replay only
        "val": _shapes(TARGET_CLASSES, CLEAN, 30, 2003),
        "test": _shapes(TARGET_CLASSES, CLEAN, 30, 2002),
    },
    "proxy-generic": {
        "train": _shapes(GENERIC_CLASSES, CLEAN, 25, 3001),  # replayed by joint-replay only
        "val": _shapes(GENERIC_CLASSES, CLEAN, 15, 3003),
        "test": _shapes(GENERIC_CLASSES, CLEAN, 15, 3002),
    },
    "proxy-night": {
        "train": _shapes(NIGHT_CLASSES, NIGHT, 60, 6001),
        "val": _shapes(NIGHT_CLASSES, NIGHT, 10, 6003),
        "test": _shapes(NIGHT_CLASSES, NIGHT, 20, 6002),
    },
    "proxy-hand": _HAND,
    "proxy-printed": {
        "train": _glyphs(DIGIT_CLASSES, 200, 4001),  # replayed by joint-replay only
        "val": _glyphs(DIGIT_CLASSES, 60, 4003),
        "test": _glyphs(DIGIT_CLASSES, 60, 4002),
    },
    "proxy-glyphs": {
        "train": _glyphs(LETTER_CLASSES, 100, 5001),  # replayed by joint-replay only
        "val": _glyphs(LETTER_CLASSES, 25, 5003),
        "test": _glyphs(LETTER_CLASSES, 25, 5002),
    },
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


def split_spec(dataset: str, split: str) -> SplitSpec:
    return _SPLITS[dataset][split]


@cache
def make_split(dataset: str, split: str) -> ProxySplit:
    """Render ``dataset``'s ``split`` (cached in-process; callers must not modify the tensors)."""
    if dataset not in _SPLITS or split not in _SPLITS[dataset]:
        valid = ", ".join(f"{d}/{s}" for d, ss in valid_splits().items() for s in ss)
        raise ValueError(f"unknown proxy split {dataset!r}/{split!r}; valid: {valid}")
    spec = _SPLITS[dataset][split]
    if spec.kind == "shapes":
        images, targets = render_classes(spec.classes, spec.per_class, spec.domain, spec.seed)
    elif spec.kind == "glyphs":
        images, targets = render_glyphs(spec.classes, spec.per_class, spec.seed)
    else:
        images, targets, _ = handwriting.hand_split(split)
    ids = [f"{dataset}/{split}/{i:06d}" for i in range(len(targets))]
    return ProxySplit(images, targets, list(spec.classes), list(PROXY_TEMPLATES), ids)
