"""The zero-shot evaluation, computed once and reused by every run that would compute it again.

Before any training (`after_session` 0) every run evaluates the model as loaded; for the same
weights, eval data, preprocessing, heads, numerics and code the predictions cannot differ
between strategies or runs, yet a grid of hundreds of runs would compute them hundreds of times
(ImageNet's 50k images among them). So the predicted and true labels of each eval set are cached
on disk, under a key that is the sha256 of everything they depend on: the model (architecture
and the sha256 of its checkpoint, or its pretrained tag), the eval set (dataset, split, YAML
hash, the sha256 of its file index, the sample ids, class names, templates), the preprocessing,
the eval batch size, device type, autocast dtype and thread count, and the code (a hash of
clbench's sources and the package versions). Data whose content the key cannot vouch for (a
folder without a file index) and models without a checkpoint or tag (random weights) are
never cached. The accuracies (every session subset) are recomputed from the cached predictions
by each run, and every reuse is recorded in the run's summary (`reused`).

An entry also keeps the image features the predictions came from and the sha256 of the image
tower that computed them, so that a run whose image encoder stays frozen never encodes an image
(`clbench.training.evaluation`).

Where and how (`clbench.caches`): the `zero-shot/` subfolder of the cache folder, each entry
written atomically with the sha256 of its tensors: a corrupt entry is detected, reported and
rebuilt; an unwritable or full cache folder is a warning, never a failed run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from clbench.caches import CacheArea, load_tensors, save_tensors

FORMAT = 2


@dataclass
class ZeroShotEntry:
    predicted: torch.Tensor
    labels: torch.Tensor
    features: torch.Tensor | None = None  # [N, D] image features before any image adapter
    visual_sha256: str | None = None  # the image tower that computed `features`

    def tensors(self) -> list[tuple[str, torch.Tensor]]:
        named = [("predicted", self.predicted), ("labels", self.labels)]
        return named + ([("features", self.features)] if self.features is not None else [])


class ZeroShotCache:
    """Cached zero-shot predictions of eval sets, by key (see the module docstring)."""

    def __init__(self, base: Path | None, common: dict[str, Any] | None):
        # `common`: what every key shares (model, numerics, code: the runner's
        # `zero_shot_cache`); None = nothing is reusable
        self.area = CacheArea(base, "zero-shot")
        self.common = common
        self.reused: dict[str, str] = {}  # eval set -> key, for the run's record

    def key(self, eval_set, dataset_hash: str | None, transform: Any) -> str | None:
        """The key of `eval_set`'s zero-shot predictions, or None when they cannot be reused."""
        if not self.area.enabled or self.common is None:
            return None
        from clbench.scenarios.loaders import kind_of
        from clbench.scenarios.manifests import load_dataset_manifest

        data = eval_set.data
        generated = not kind_of(load_dataset_manifest(data.dataset)).has_files  # the proxy's
        if not (data.prepared_sha256 or generated):
            return None  # files the key cannot vouch for
        preprocessing = getattr(transform, "description", None)
        if preprocessing is None:
            return None  # a preprocessing that cannot say what it is
        fields = {"format": FORMAT, **self.common, "eval_set": eval_set.name,
                  "dataset": data.dataset, "split": data.split, "dataset_hash": dataset_hash,
                  "prepared_sha256": data.prepared_sha256,
                  "sample_ids": hashlib.sha256("\n".join(map(str, data.sample_ids))
                                               .encode()).hexdigest(),
                  "class_names": list(data.class_names), "templates": list(data.templates),
                  "preprocessing": preprocessing}
        if eval_set.label_space:  # task-agnostic: classified among these heads
            fields["label_space"] = list(eval_set.label_space)
        text = json.dumps(fields, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def load(self, key: str | None) -> ZeroShotEntry | None:
        entry = load_tensors(self.area, key, "zero-shot evaluation") if key else None
        if entry is None:
            return None
        tensors, info = entry
        return ZeroShotEntry(tensors["predicted"], tensors["labels"], tensors.get("features"),
                             info.get("visual_sha256"))

    def save(self, key: str | None, entry: ZeroShotEntry) -> None:
        if key is not None:
            save_tensors(self.area, key, dict(entry.tensors()),
                         visual_sha256=entry.visual_sha256)
