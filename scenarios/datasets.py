"""Dataset loaders behind the manifests: the embedded proxy and image folders on local disk.

A loader returns a `SplitData`: class names, prompt templates, integer targets, stable sample ids
and a function that loads one raw item (a tensor for the proxy, a PIL image for files). The
model's preprocessing is applied later (`ImageSplitDataset`), so data problems surface before
any weights are loaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from clbench.errors import UserError
from clbench.scenarios.manifests import DatasetManifest

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm"}
DATA_ENV = "CLBENCH_DATA"


def resolve_data_root(data_root: str | None) -> Path:
    """--data-root > $CLBENCH_DATA > ./data"""
    return Path(data_root or os.environ.get(DATA_ENV) or "data").expanduser().resolve()


@dataclass
class SplitData:
    dataset: str
    split: str
    class_names: list[str]
    templates: list[str]
    targets: torch.Tensor  # int64, labels index class_names
    sample_ids: list[str]
    load: Callable[[int], Any]

    def __len__(self) -> int:
        return len(self.sample_ids)


class ImageSplitDataset(Dataset):
    """(preprocessed image, label) pairs of a split; `targets` as Avalanche expects."""

    def __init__(self, data: SplitData, transform: Callable[[Any], torch.Tensor],
                 indices: list[int] | None = None):
        self.data = data
        self.transform = transform
        self.indices = list(range(len(data))) if indices is None else list(indices)
        self.targets = data.targets[self.indices].tolist()

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        index = self.indices[i]
        return self.transform(self.data.load(index)), self.targets[i]


def load_split(manifest: DatasetManifest, split: str, data_root: str | None = None) -> SplitData:
    if split not in manifest.splits:
        raise UserError(f"dataset '{manifest.name}' has no '{split}' split "
                        f"(it has: {', '.join(manifest.splits)})")
    if manifest.loader == "proxy":
        return _load_proxy(manifest, split)
    return _load_folder(manifest, split, resolve_data_root(data_root))


def _load_proxy(manifest: DatasetManifest, split: str) -> SplitData:
    from clbench.scenarios.proxy.data import make_split

    proxy = make_split(manifest.name, split)
    images = proxy.images
    return SplitData(dataset=manifest.name, split=split, class_names=list(proxy.class_names),
                     templates=list(proxy.templates), targets=proxy.targets.long(),
                     sample_ids=list(proxy.sample_ids), load=lambda i: images[i])


def _load_folder(manifest: DatasetManifest, split: str, data_root: Path) -> SplitData:
    """`<data root>/<subdir>/<split>/<class name>/<image>`, class names from the manifest."""
    root = data_root / manifest.subdir / split
    if not root.is_dir():
        layout = manifest.layout.strip() or (
            f"<data root>/{manifest.subdir}/<split>/<class name>/<image files>")
        raise UserError(
            f"dataset '{manifest.name}' ({split} split) not found: expected {root}",
            hint=f"{manifest.obtain.strip()} Expected layout: {layout}. "
                 f"Set the data root with --data-root or {DATA_ENV}.")
    paths: list[Path] = []
    targets: list[int] = []
    missing = []
    for label, name in enumerate(manifest.class_names):
        class_dir = root / name
        if not class_dir.is_dir():
            missing.append(name)
            continue
        files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        paths += files
        targets += [label] * len(files)
    if missing:
        raise UserError(f"dataset '{manifest.name}': {len(missing)} class folder(s) missing under "
                        f"{root}: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}",
                        hint=manifest.obtain.strip() or None)
    if not paths:
        raise UserError(f"dataset '{manifest.name}': no images under {root}")

    def load(i: int):
        from PIL import Image

        with Image.open(paths[i]) as image:
            return image.convert("RGB")

    ids = [f"{manifest.name}/{split}/{p.relative_to(root).as_posix()}" for p in paths]
    return SplitData(dataset=manifest.name, split=split, class_names=list(manifest.class_names),
                     templates=list(manifest.templates), targets=torch.tensor(targets),
                     sample_ids=ids, load=load)
