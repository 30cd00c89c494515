"""Dataset loading behind the declarations (the manifests): image folders on local disk (TSI,
DALL-E), GTSRB in torchvision's layout, and the ImageNet validation set (LoRSU paper, section
5.1). Which function serves a dataset is decided by its kind (`loaders.py`, the `loader:` key),
reached as `manifest.kind`.
A dataset prepared by `clbench data prepare` is listed from its file index (`manifest.json`).

A loader returns a `SplitData`: class names, prompt templates, integer targets, stable sample ids
and a function that loads one raw item (a tensor for the proxy, a PIL image for files). The
model's preprocessing is applied later (`ImageSplitDataset`), so data problems surface before
any weights are loaded.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from clbench.errors import UserError
from clbench.scenarios.integrity import (
    INDEX_NAME,
    FileRecord,
    PreparedIndex,
    read_index,
    verify_decodable,
    verify_records,
)
from clbench.scenarios.manifest_types import DatasetManifest

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm"}
DATA_ENV = "CLBENCH_DATA"


def resolve_data_root(data_root: str | None) -> Path:
    """--data-root > $CLBENCH_DATA > ./data"""
    return Path(data_root or os.environ.get(DATA_ENV) or "data").expanduser().resolve()


def dataset_env_names(manifest: DatasetManifest) -> list[str]:
    """Per-dataset settings: $CLBENCH_DATA_<NAME> or $CLBENCH_DATA_<SUBDIR> (e.g.
    CLBENCH_DATA_IMAGENET serves both `imagenet` and its subset `imagenet-10pc`)."""
    names = [manifest.name, manifest.subdir]
    out: list[str] = []
    for n in names:
        env = f"{DATA_ENV}_{n.upper().replace('-', '_')}"
        if n and env not in out:
            out.append(env)
    return out


def dataset_dir(manifest: DatasetManifest, data_root: str | None = None) -> Path:
    """The dataset's own folder: a per-dataset variable (the folder itself) wins, since it
    points at one dataset that lives elsewhere (a shared ImageNet copy); otherwise
    `<data root>/<subdir>` with the data root from --data-root, $CLBENCH_DATA or ./data."""
    for env in dataset_env_names(manifest):
        if os.environ.get(env):
            return Path(os.environ[env]).expanduser().resolve()
    return resolve_data_root(data_root) / manifest.subdir


def missing_data_hint(manifest: DatasetManifest) -> str:
    layout = manifest.kind.layout_text(manifest)
    prepare = f" Then: {manifest.prepare.strip()}." if manifest.prepare else ""
    return (f"{manifest.obtain.strip()}{prepare} Expected layout: {layout}. Set the data root "
            f"with --data-root or {DATA_ENV}, or this dataset's folder with "
            f"{dataset_env_names(manifest)[0]}.")


@dataclass
class SplitData:
    dataset: str
    split: str
    class_names: list[str]
    templates: list[str]
    targets: torch.Tensor  # int64, labels index class_names
    sample_ids: list[str]
    load: Callable[[int], Any]
    groups: list[str] | None = None  # per sample: the source class (a TSI action), if known
    prepared_sha256: str | None = None  # sha256 of the dataset's file index, if it has one
    skipped: list[str] = field(default_factory=list)  # corrupt/missing files left out on request

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


def load_split(manifest: DatasetManifest, split: str, data_root: str | None = None,
               skip_corrupt: bool = False) -> SplitData:
    """Load a split through the dataset's kind (`loaders.py`), verified before any model is
    built (see `load_file_split` for datasets of files)."""
    if split not in manifest.splits:
        raise UserError(f"dataset '{manifest.name}' has no '{split}' split "
                        f"(it has: {', '.join(manifest.splits)})")
    return manifest.kind.load_split(manifest, split, data_root, skip_corrupt)


def load_file_split(manifest: DatasetManifest, split: str, data_root: str | None = None,
                    skip_corrupt: bool = False) -> SplitData:
    """Load a split's file list and verify it.

    Files are checked against the dataset's file index (`manifest.json`, sha256) when it has
    one, else by a quick decodability check (`integrity.decodes`). A missing or corrupt file
    fails with the list of files unless `skip_corrupt`, which leaves them out and records them
    in `SplitData.skipped`.
    """
    folder = dataset_dir(manifest, data_root)
    listing = list_files(manifest, split, folder)
    if manifest.subset:
        listing = seeded_subset(listing, **manifest.subset)
    problems = (verify_records(folder, [f.record for f in listing]) if listing.prepared
                else verify_decodable(folder, [folder / f.rel for f in listing], thorough=False))
    skipped: list[str] = []
    if problems:
        if not skip_corrupt:
            raise UserError(f"dataset '{manifest.name}' ({split}): {problems.summary()}",
                            hint=f"`clbench data check {manifest.name}` lists every file; "
                                 "re-prepare the data, or pass --skip-corrupt to leave them out "
                                 "(recorded with the run)")
        skipped = problems.all()
        bad = set(skipped)
        listing = listing.without(bad)
    return listing.to_split(manifest, split, skipped)


# --------------------------------------------------------------------------- file listings


@dataclass(frozen=True)
class ListedFile:
    rel: str  # relative to the dataset folder
    label: int
    group: str | None = None
    record: FileRecord | None = None


class Listing(list):
    """Files of one split, in a fixed order, plus the names and provenance they come with."""

    def __init__(self, files, class_names: list[str], templates: list[str],
                 prepared: PreparedIndex | None, folder: Path):
        super().__init__(files)
        self.class_names, self.templates = class_names, templates
        self.prepared, self.folder = prepared, folder

    def like(self, files) -> Listing:
        return Listing(files, self.class_names, self.templates, self.prepared, self.folder)

    def without(self, rels: set[str]) -> Listing:
        return self.like([f for f in self if f.rel not in rels])

    def to_split(self, manifest: DatasetManifest, split: str, skipped: list[str]) -> SplitData:
        if not self:
            raise UserError(f"dataset '{manifest.name}': no images in its {split} split under "
                            f"{self.folder}", hint=missing_data_hint(manifest))
        paths = [self.folder / f.rel for f in self]

        def load(i: int):
            from PIL import Image

            with Image.open(paths[i]) as image:
                return image.convert("RGB")

        groups = [f.group for f in self]
        return SplitData(
            dataset=manifest.name, split=split, class_names=list(self.class_names),
            templates=list(self.templates), targets=torch.tensor([f.label for f in self]),
            sample_ids=[f"{manifest.name}/{f.rel}" for f in self], load=load,
            groups=groups if all(g is not None for g in groups) else None,
            prepared_sha256=self.prepared.sha256 if self.prepared else None, skipped=skipped)


def seeded_subset(listing: Listing, per_class: int, seed: int) -> Listing:
    """`per_class` files of every class: those with the smallest sha256(seed:path). The choice
    of a file depends only on its own name and its class's other names, never on torch or on
    the order of listing, so the same copy of a dataset gives the same subset everywhere."""
    by_class: dict[int, list[ListedFile]] = {}
    for f in listing:
        by_class.setdefault(f.label, []).append(f)

    def key(f: ListedFile) -> str:
        return hashlib.sha256(f"{seed}:{f.rel}".encode()).hexdigest()

    keep = {f.rel for files in by_class.values() for f in sorted(files, key=key)[:per_class]}
    return listing.like([f for f in listing if f.rel in keep])


def list_files(manifest: DatasetManifest, split: str, folder: Path) -> Listing:
    """The split's files, from the file index when the folder has one, else as the dataset's
    kind finds them on disk."""
    index = read_index(folder) if folder.is_dir() else None
    return manifest.kind.list_files(manifest, split, folder, index)


def listing_from_index(manifest: DatasetManifest, split: str, folder: Path,
                       index: PreparedIndex) -> Listing:
    """The split's files as the file index lists them, labels by the declared class names."""
    class_names = list(manifest.class_names)
    label_of = {name: i for i, name in enumerate(class_names)}
    files = []
    for r in index.records:
        if r.split != split:
            continue
        if r.label not in label_of:
            raise UserError(f"dataset '{manifest.name}': {INDEX_NAME} lists {r.path} with class "
                            f"'{r.label}', which is not one of the dataset's classes",
                            hint=f"re-create it with `clbench data prepare {manifest.name}`")
        files.append(ListedFile(r.path, label_of[r.label], r.group, r))
    return Listing(files, class_names, list(manifest.templates), index, folder)


def not_found(manifest: DatasetManifest, split: str, where: Path | str) -> UserError:
    """The error of a split whose files are not where they were expected (`where`)."""
    return UserError(f"dataset '{manifest.name}' ({split} split) not found: expected {where}",
                     hint=missing_data_hint(manifest))


def list_folder(manifest: DatasetManifest, split: str, folder: Path) -> Listing:
    """`<dataset folder>/<split>/<class name>/<image>`, class names from the manifest."""
    root = folder / split
    if not root.is_dir():
        raise not_found(manifest, split, root)
    files: list[ListedFile] = []
    missing = []
    for label, name in enumerate(manifest.class_names):
        class_dir = root / name
        if not class_dir.is_dir():
            missing.append(name)
            continue
        files += [ListedFile(p.relative_to(folder).as_posix(), label)
                  for p in sorted(class_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if missing:
        raise UserError(f"dataset '{manifest.name}': {len(missing)} class folder(s) missing under "
                        f"{root}: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}",
                        hint=missing_data_hint(manifest))
    return Listing(files, list(manifest.class_names), list(manifest.templates), None, folder)


def gtsrb_samples(folder: Path, split: str, download: bool = False) -> list[tuple[Path, int]]:
    """(path, label) pairs from torchvision's `GTSRB`, whose root is the folder holding
    `gtsrb/` (torchvision appends that name itself)."""
    from torchvision.datasets import GTSRB

    if folder.name != "gtsrb":
        raise UserError(f"the GTSRB folder must be named 'gtsrb' (torchvision's layout), got "
                        f"{folder}")
    try:
        dataset = GTSRB(str(folder.parent), split=split, download=download)
    except RuntimeError as err:
        raise UserError(f"GTSRB ({split}) not found under {folder}: {err}") from None
    return [(Path(p), int(y)) for p, y in dataset._samples]


def list_gtsrb(manifest: DatasetManifest, split: str, folder: Path) -> Listing:
    target = folder / "GTSRB" / ("Training" if split == "train" else "Final_Test/Images")
    if not target.is_dir():
        raise not_found(manifest, split, target)
    files = [ListedFile(p.relative_to(folder).as_posix(), y)
             for p, y in sorted(gtsrb_samples(folder, split))]
    return Listing(files, list(manifest.class_names), list(manifest.templates), None, folder)


def imagenet_names_and_templates() -> tuple[list[str], list[str]]:
    """open_clip's ImageNet class names and the OpenAI 80-template ensemble (CLIP paper), the
    templates turned from lambdas into format strings."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES

    return list(IMAGENET_CLASSNAMES), [t("{}") for t in OPENAI_IMAGENET_TEMPLATES]


def list_imagenet(manifest: DatasetManifest, split: str, folder: Path,
                   prepared: PreparedIndex | None) -> Listing:
    """`<dataset folder>/val/<wnid>/<image>`: the class index is the wnid's rank among the 1000
    sorted wnids, the order of open_clip's class names."""
    names, templates = imagenet_names_and_templates()
    if prepared is not None:
        records = [r for r in prepared.records if r.split == split]
        wnids = sorted({r.label for r in prepared.records})
        pairs = [(r.path, r.label, r) for r in records]
    else:
        root = folder / split
        if not root.is_dir():
            raise not_found(manifest, split, root)
        wnids = sorted(p.name for p in root.iterdir() if p.is_dir())
        pairs = [(p.relative_to(folder).as_posix(), w, None) for w in wnids
                 for p in sorted((root / w).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if len(wnids) != len(names):
        raise UserError(f"ImageNet under {folder / split} has {len(wnids)} class folders, "
                        f"expected {len(names)} (one per wnid)", hint=missing_data_hint(manifest))
    index = {w: i for i, w in enumerate(wnids)}
    files = [ListedFile(rel, index[w], None, r) for rel, w, r in pairs]
    return Listing(files, names, templates, prepared, folder)
