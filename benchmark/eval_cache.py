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

Where: $CLBENCH_CACHE_DIR (`off` disables it), else ~/.cache/clbench. Each entry is written to
a temporary file and renamed, and holds the sha256 of its tensors: a corrupt entry is detected,
reported and rebuilt. An unwritable or full cache folder is a warning, never a failed run: the
run goes on uncached.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from clbench.files import write_atomically

ENV = "CLBENCH_CACHE_DIR"
FORMAT = 1


def cache_base() -> Path | None:
    """The cache folder, or None when caching is switched off."""
    raw = os.environ.get(ENV)
    if raw is not None and raw.strip().lower() in ("off", "none", "0", ""):
        return None
    if raw:
        return Path(raw).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "clbench"


def _tensor_sha(*tensors: torch.Tensor) -> str:
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(t.contiguous().numpy().tobytes())
    return digest.hexdigest()


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


class ZeroShotCache:
    """Cached zero-shot predictions of eval sets, by key (see the module docstring)."""

    def __init__(self, base: Path | None, common: dict[str, Any] | None):
        # `common`: what every key shares (model, numerics, code: the runner's
        # `zero_shot_cache`); None = nothing is reusable
        self.folder = base / "zero-shot" if base is not None else None
        self.common = common
        self.reused: dict[str, str] = {}  # eval set -> key, for the run's record

    def key(self, eval_set, dataset_hash: str | None, transform: Any) -> str | None:
        """The key of `eval_set`'s zero-shot predictions, or None when they cannot be reused."""
        if self.folder is None or self.common is None:
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
        text = json.dumps(fields, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def load(self, key: str | None) -> tuple[torch.Tensor, torch.Tensor] | None:
        if key is None or self.folder is None:
            return None
        path = self.folder / f"{key}.pt"
        if not path.exists():
            return None
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
            predicted, labels = entry["predicted"], entry["labels"]
            intact = entry["key"] == key and entry["sha256"] == _tensor_sha(predicted, labels)
        except Exception:  # noqa: BLE001 - any unreadable entry is a corrupt one
            intact = False
        if not intact:
            _warn(f"the cached zero-shot evaluation {path} is corrupt: computed again")
            try:
                path.unlink()
            except OSError:
                pass
            return None
        return predicted, labels

    def save(self, key: str | None, predicted: torch.Tensor, labels: torch.Tensor) -> None:
        if key is None or self.folder is None:
            return
        entry = {"key": key, "predicted": predicted, "labels": labels,
                 "sha256": _tensor_sha(predicted, labels)}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomically(self.folder / f"{key}.pt", lambda handle: torch.save(entry, handle))
        except OSError as err:
            reason = os.strerror(err.errno) if err.errno else str(err)
            _warn(f"cannot write the zero-shot cache under {self.folder} ({reason}): this "
                  f"run goes on uncached (set ${ENV} to a writable folder, or 'off')")
            self.folder = None  # once is enough
