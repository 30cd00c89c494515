"""Dataset kinds that read torchvision's own layouts of the eleven datasets of MTIL (ZSCL, Zheng
et al., ICCV 2023; MoE-Adapters, Yu et al., CVPR 2024) and CoOp's UCF101 mid-frames (CoOp, Zhou
et al., IJCV 2022; its base-to-new protocol, CoCoOp, CVPR 2022).

A dataset's folder is the one torchvision creates under its root (the declaration's `subdir`:
`cifar-100-python`, `fgvc-aircraft-2013b`, ...), so a data root filled by
`torchvision.datasets.X(root=<data root>, download=True)`, as ZSCL's code fills it, is read as
it is. torchvision lists the files and labels from the user's copy (`download=False`); clbench
checks first that the files torchvision needs are there, so a missing or misplaced copy is one
line naming them, and nothing is created.

Where a dataset has no official train/test split (Caltech101, EuroSAT, SUN397, UCF101), the
split is CoOp's fixed one, `split_zhou_<Name>.json` in the dataset's folder: for each of train,
val and test a list of [path relative to the image folder, label, CoOp's class name]. Its labels
are checked against torchvision's class order (the class folder of each path), so a split file
of another dataset or version fails before a run starts. (ZSCL's code draws a seeded random
80/20 split instead; CoOp's published one makes every copy split alike.)

* Files (`TorchvisionKind`, `CoopSplitKind`): a `Listing` of image files, loaded and verified by
  `load_file_split` like every kind of files; `clbench data prepare NAME` pins their sha256s.
* Arrays (`ArrayKind`: CIFAR-100's pickles, MNIST's idx files): read whole through torchvision,
  one PIL image per item on demand; nothing to prepare.

Importable without torch, torchvision or PIL (the CLI's parser reads the kinds): each method
imports what it needs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clbench.errors import UserError
from clbench.scenarios.check import CheckResult
from clbench.scenarios.loaders import (
    DatasetKind,
    Log,
    Preparation,
    PrepareArgs,
    Report,
    register_loader,
)

if TYPE_CHECKING:
    from clbench.scenarios.datasets import Listing, SplitData
    from clbench.scenarios.integrity import PreparedIndex
    from clbench.scenarios.manifest_types import DatasetManifest

COOP_DATASETS = "https://github.com/KaiyangZhou/CoOp/blob/main/DATASETS.md"
Pairs = list[tuple[str, int]]  # (path relative to the dataset folder, label)


# --------------------------------------------------------------------------- shared checks


def _hint(manifest: DatasetManifest) -> str:
    from clbench.scenarios.datasets import missing_data_hint

    return missing_data_hint(manifest)


def _require(manifest: DatasetManifest, split: str, paths: list[Path]) -> None:
    """Fail naming every expected file or folder that is missing."""
    from clbench.scenarios.datasets import not_found

    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise not_found(manifest, split, ", ".join(missing))


def _check_labels(manifest: DatasetManifest, split: str, labels) -> None:
    """Every label one of the declaration's classes (else the data is not the full dataset)."""
    bad = next((y for y in labels if not 0 <= y < len(manifest.class_names)), None)
    if bad is not None:
        raise UserError(f"dataset '{manifest.name}' ({split}): label {bad} is not one of the "
                        f"declaration's {len(manifest.class_names)} classes",
                        hint=f"is this the full dataset? {_hint(manifest)}")


def _same_count(manifest: DatasetManifest, found: int, where: str) -> None:
    """The data's classes and the declaration's class names must match one to one."""
    declared = len(manifest.class_names)
    if found != declared:
        raise UserError(f"dataset '{manifest.name}': {where} has {found} classes, the "
                        f"declaration {declared} class names",
                        hint=f"is this the full dataset? {_hint(manifest)}")


def _read_torchvision(manifest: DatasetManifest, folder: Path, folder_name: str,
                      make: Callable[[str], Any], what: str) -> Any:
    """torchvision's dataset over the user's copy: `make(root)` with root the folder holding
    `folder_name`, which torchvision appends itself (so the folder must carry that name)."""
    if folder.name != folder_name:
        raise UserError(f"dataset '{manifest.name}': torchvision reads it only from a folder named "
                        f"'{folder_name}', got {folder}",
                        hint="rename the folder, or point the variable at one named so; "
                             + _hint(manifest))
    try:
        return make(str(folder.parent))
    except (RuntimeError, OSError, KeyError, ValueError) as err:
        raise UserError(f"dataset '{manifest.name}': torchvision.datasets.{what} cannot read "
                        f"{folder}: {err}", hint=_hint(manifest)) from None


def _relative(paths: list[Any], labels: list[int], folder: Path) -> Pairs:
    return [(Path(p).relative_to(folder).as_posix(), int(y)) for p, y in zip(paths, labels)]


# --------------------------------------------------------------------------- kinds of files


def _prepare_index(manifest: DatasetManifest, args: PrepareArgs, log: Log) -> Report:
    """Hash every split's files where they are (as the kind lists them) into the file index."""
    from clbench.scenarios.prepare import index_in_place

    folder, kind = args.folder, manifest.kind
    files = [(f.rel, split, manifest.class_names[f.label]) for split in manifest.splits
             for f in kind.list_files(manifest, split, folder, None)]
    return index_in_place(folder, manifest.name, files,
                          f"{manifest.name}: files in place ({kind.summary})")


class ListedKind(DatasetKind):
    """Base of the kinds of image files: `required` says what must exist for a split, `pairs`
    lists its (file, label) pairs. Files are listed sorted by path, the order of the file index,
    so a prepared copy and an unprepared one give the same samples in the same order."""

    preparation = Preparation(flags=[], run=_prepare_index)

    def required(self, folder: Path, split: str) -> list[Path]:
        raise NotImplementedError

    def pairs(self, manifest: DatasetManifest, split: str, folder: Path) -> Pairs:
        raise NotImplementedError

    def list_files(self, manifest: DatasetManifest, split: str, folder: Path,
                   index: PreparedIndex | None) -> Listing:
        from clbench.scenarios.datasets import ListedFile, Listing, listing_from_index

        if index is not None:
            return listing_from_index(manifest, split, folder, index)
        _require(manifest, split, self.required(folder, split))
        pairs = sorted(self.pairs(manifest, split, folder))
        _check_labels(manifest, split, [y for _, y in pairs])
        return Listing([ListedFile(rel, y) for rel, y in pairs], list(manifest.class_names),
                       list(manifest.templates), None, folder)


class TorchvisionReader:
    """A kind that reads the user's copy through torchvision's dataset `make(root)`, from the
    folder that dataset names `folder_name` (`_read_torchvision`)."""

    folder_name = ""

    def read(self, manifest: DatasetManifest, folder: Path, make: Callable[[str], Any],
             what: str) -> Any:
        return _read_torchvision(manifest, folder, self.folder_name, make, what)


class TorchvisionKind(TorchvisionReader, ListedKind):
    """Files that a torchvision dataset lists from the folder it names `folder_name`. The lists
    are read from its private attributes (`_image_files`, `_labels`, ...): its public interface
    yields decoded images, and listing must not decode 100,000 of them."""


@register_loader("fgvc-aircraft")
class AircraftKind(TorchvisionKind):
    summary = "torchvision's FGVCAircraft layout (variants)"
    folder_name = "fgvc-aircraft-2013b"

    def default_layout(self, manifest):
        return (f"<data root>/{self.folder_name}/data/images/<id>.jpg, data/variants.txt, "
                "data/images_variant_<split>.txt")

    def required(self, folder, split):
        data = folder / "data"
        return [data / "images", data / "variants.txt", data / f"images_variant_{split}.txt"]

    def pairs(self, manifest, split, folder):
        from torchvision.datasets import FGVCAircraft

        data = self.read(manifest, folder, lambda root: FGVCAircraft(
            root, split=split, annotation_level="variant", download=False), "FGVCAircraft")
        _same_count(manifest, len(data.classes), f"{folder}/data/variants.txt")
        return _relative(data._image_files, data._labels, folder)


@register_loader("dtd")
class DtdKind(TorchvisionKind):
    summary = "torchvision's DTD layout (partition 1)"
    folder_name = "dtd"

    def default_layout(self, manifest):
        return "<data root>/dtd/dtd/images/<class>/<image>.jpg, dtd/dtd/labels/<split>1.txt"

    def required(self, folder, split):
        return [folder / "dtd" / "images", folder / "dtd" / "labels" / f"{split}1.txt"]

    def pairs(self, manifest, split, folder):
        from torchvision.datasets import DTD

        data = self.read(manifest, folder, lambda root: DTD(
            root, split=split, partition=1, download=False), "DTD")
        _same_count(manifest, len(data.classes), f"{folder}/dtd/labels/{split}1.txt")
        return _relative(data._image_files, data._labels, folder)


def _flowers102() -> type:
    from torchvision.datasets import Flowers102

    class LocalFlowers102(Flowers102):
        # torchvision refuses label and split files whose md5 is not the one it publishes; a
        # copy that reads the same (re-saved .mat files, the tests' miniature one) is accepted,
        # and `clbench data check` notes the difference instead (`_md5_notes`).
        _file_dict = {key: (name, None) for key, (name, _) in Flowers102._file_dict.items()}

    return LocalFlowers102


@register_loader("flowers102")
class FlowersKind(TorchvisionKind):
    summary = "torchvision's Flowers102 layout"
    folder_name = "flowers-102"

    def default_layout(self, manifest):
        return "<data root>/flowers-102/jpg/image_<n>.jpg, imagelabels.mat, setid.mat"

    def required(self, folder, split):
        return [folder / "jpg", folder / "imagelabels.mat", folder / "setid.mat"]

    def pairs(self, manifest, split, folder):
        data = self.read(manifest, folder, lambda root: _flowers102()(
            root, split=split, download=False), "Flowers102")
        return _relative(data._image_files, data._labels, folder)

    def check(self, manifest, data_root):
        from torchvision.datasets import Flowers102

        result = super().check(manifest, data_root)
        result.notes += _md5_notes(result.folder, Flowers102._file_dict.values())
        return result


@register_loader("food101")
class FoodKind(TorchvisionKind):
    summary = "torchvision's Food101 layout"
    folder_name = "food-101"

    def default_layout(self, manifest):
        return "<data root>/food-101/images/<class>/<id>.jpg, food-101/meta/<split>.json"

    def required(self, folder, split):
        return [folder / "images", folder / "meta" / f"{split}.json"]

    def pairs(self, manifest, split, folder):
        from torchvision.datasets import Food101

        data = self.read(manifest, folder, lambda root: Food101(root, split=split, download=False),
                         "Food101")
        _same_count(manifest, len(data.classes), f"{folder}/meta/{split}.json")
        return _relative(data._image_files, data._labels, folder)


@register_loader("oxford-pet")
class PetKind(TorchvisionKind):
    summary = "torchvision's OxfordIIITPet layout (trainval as train)"
    folder_name = "oxford-iiit-pet"
    torchvision_splits = {"train": "trainval", "test": "test"}

    def default_layout(self, manifest):
        return ("<data root>/oxford-iiit-pet/images/<Breed>_<n>.jpg, "
                "oxford-iiit-pet/annotations/{trainval,test}.txt")

    def _split(self, manifest, split):
        if split not in self.torchvision_splits:
            raise UserError(f"dataset '{manifest.name}': torchvision's OxfordIIITPet has no "
                            f"'{split}' split (train is its trainval)",
                            hint=f"declare splits among {', '.join(self.torchvision_splits)}")
        return self.torchvision_splits[split]

    def required(self, folder, split):
        return [folder / "images",
                folder / "annotations" / f"{self.torchvision_splits.get(split, split)}.txt"]

    def pairs(self, manifest, split, folder):
        from torchvision.datasets import OxfordIIITPet

        ours = self._split(manifest, split)
        data = self.read(manifest, folder, lambda root: OxfordIIITPet(
            root, split=ours, download=False), "OxfordIIITPet")
        _same_count(manifest, len(data.classes), f"{folder}/annotations/{ours}.txt")
        return _relative(data._images, data._labels, folder)


@register_loader("stanford-cars")
class CarsKind(TorchvisionKind):
    summary = "torchvision's StanfordCars layout"
    folder_name = "stanford_cars"

    def default_layout(self, manifest):
        return ("<data root>/stanford_cars/{cars_train,cars_test}/<n>.jpg, "
                "devkit/{cars_meta,cars_train_annos}.mat, cars_test_annos_withlabels.mat")

    def required(self, folder, split):
        meta = folder / "devkit" / "cars_meta.mat"
        if split == "train":
            return [meta, folder / "devkit" / "cars_train_annos.mat", folder / "cars_train"]
        return [meta, folder / "cars_test_annos_withlabels.mat", folder / "cars_test"]

    def pairs(self, manifest, split, folder):
        from torchvision.datasets import StanfordCars

        data = self.read(manifest, folder, lambda root: StanfordCars(
            root, split=split, download=False), "StanfordCars")
        _same_count(manifest, len(data.classes), f"{folder}/devkit/cars_meta.mat")
        paths, labels = zip(*data._samples) if data._samples else ((), ())
        return _relative(list(paths), list(labels), folder)


# --------------------------------------------------------------------------- CoOp's split files


def coop_split(manifest: DatasetManifest, split: str, path: Path) -> list[tuple[str, int, str]]:
    """One split of CoOp's `split_zhou_<Name>.json`: (path relative to the image folder, label,
    CoOp's class name) per image."""
    if not path.is_file():
        raise UserError(f"dataset '{manifest.name}' ({split} split): CoOp's {path.name} expected "
                        f"at {path}; obtain it from the link in CoOp's DATASETS.md "
                        f"({COOP_DATASETS})", hint=_hint(manifest))
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))[split]
        rows = [(str(rel), label, str(name)) for rel, label, name in entries]
    except (ValueError, KeyError, TypeError) as err:
        problem = (f"has no '{split}' list" if isinstance(err, KeyError) else
                   "is not CoOp's {train, val, test: [[path, label, class name], ...]}")
        raise UserError(f"dataset '{manifest.name}': {path} {problem}",
                        hint=f"download it again from the link in CoOp's DATASETS.md "
                             f"({COOP_DATASETS})") from None
    if not all(isinstance(label, int) and not isinstance(label, bool) for _, label, _ in rows):
        raise UserError(f"dataset '{manifest.name}': {path} has a label that is not an integer",
                        hint=f"download it again from CoOp's DATASETS.md ({COOP_DATASETS})")
    return rows


class CoopSplitKind(ListedKind):
    """Images under `image_folder` (relative to the dataset's folder; "" for the folder itself)
    split by CoOp's `split_file` in the dataset's folder. `row_problem` says what is wrong with a
    row of it, checked for every row before anything is loaded."""

    image_folder = ""
    split_file = ""

    def required(self, folder, split):
        return [folder / self.image_folder] if self.image_folder else []

    def row_problem(self, manifest: DatasetManifest,
                    folder: Path) -> Callable[[str, int, str], str | None]:
        return lambda rel, label, name: None

    def pairs(self, manifest, split, folder):
        rows = coop_split(manifest, split, folder / self.split_file)
        problem_of = self.row_problem(manifest, folder)
        for row in rows:
            problem = problem_of(*row)
            if problem:
                raise UserError(f"dataset '{manifest.name}': {self.split_file} {problem}",
                                hint=f"use CoOp's {self.split_file} ({COOP_DATASETS}) with the "
                                     "dataset's full, unrenamed class folders")
        base = f"{self.image_folder}/" if self.image_folder else ""
        return [(base + rel, label) for rel, label, _ in rows]


class TorchvisionSplitKind(TorchvisionReader, CoopSplitKind):
    """CoOp's split over files in torchvision's layout: each label of the split file must be
    the one torchvision's class order gives the file's class folder."""

    def classes(self, manifest: DatasetManifest, folder: Path) -> dict[str, int]:
        """torchvision's class index of each class folder name."""
        raise NotImplementedError

    def class_folder(self, rel: str) -> str:
        return rel.split("/")[0]

    def row_problem(self, manifest, folder):
        index = self.classes(manifest, folder)
        _same_count(manifest, len(index), f"{folder / self.image_folder}")

        def problem(rel: str, label: int, name: str) -> str | None:
            own = index.get(self.class_folder(rel))
            if own is None:
                return (f"lists {rel}, whose class folder torchvision does not find in "
                        f"{folder / self.image_folder}")
            if own != label:
                return f"labels {rel} ({name}) {label}, torchvision's class order {own}"
            return None

        return problem


@register_loader("caltech101")
class CaltechKind(TorchvisionSplitKind):
    summary = "torchvision's Caltech101 layout, CoOp's split"
    folder_name = "caltech101"
    image_folder = "101_ObjectCategories"
    split_file = "split_zhou_Caltech101.json"

    def default_layout(self, manifest):
        return ("<data root>/caltech101/101_ObjectCategories/<class>/image_<n>.jpg, "
                "caltech101/split_zhou_Caltech101.json")

    def required(self, folder, split):
        images = folder / self.image_folder
        # torchvision's Caltech101 takes BACKGROUND_Google out of its classes: it must be there
        return [images / "BACKGROUND_Google"] if images.is_dir() else [images]

    def classes(self, manifest, folder):
        from torchvision.datasets import Caltech101

        data = self.read(manifest, folder, lambda root: Caltech101(root, download=False),
                         "Caltech101")
        # CoOp leaves out Faces_easy too (the same faces, cropped): 100 classes, sorted
        kept = [c for c in data.categories if c != "Faces_easy"]
        return {c: i for i, c in enumerate(kept)}


@register_loader("eurosat")
class EurosatKind(TorchvisionSplitKind):
    summary = "torchvision's EuroSAT layout, CoOp's split"
    folder_name = "eurosat"
    image_folder = "2750"
    split_file = "split_zhou_EuroSAT.json"

    def default_layout(self, manifest):
        return "<data root>/eurosat/2750/<class>/<class>_<n>.jpg, eurosat/split_zhou_EuroSAT.json"

    def classes(self, manifest, folder):
        from torchvision.datasets import EuroSAT

        return self.read(manifest, folder, lambda root: EuroSAT(root, download=False),
                         "EuroSAT").class_to_idx


@register_loader("sun397")
class SunKind(TorchvisionSplitKind):
    summary = "torchvision's SUN397 layout, CoOp's split"
    folder_name = "SUN397"
    split_file = "split_zhou_SUN397.json"  # beside ClassName.txt; paths relative to the folder

    def default_layout(self, manifest):
        return ("<data root>/SUN397/<letter>/<class>[/<place>]/sun_<id>.jpg, "
                "SUN397/ClassName.txt, SUN397/split_zhou_SUN397.json")

    def required(self, folder, split):
        return [folder / "ClassName.txt"]

    def class_folder(self, rel):
        return "/".join(rel.split("/")[1:-1])  # a/apartment_building/outdoor/x.jpg: as named

    def classes(self, manifest, folder):
        from torchvision.datasets import SUN397

        return self.read(manifest, folder, lambda root: SUN397(root, download=False),
                         "SUN397").class_to_idx


def _words(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@register_loader("ucf101-midframes")
class Ucf101Kind(CoopSplitKind):
    """CoOp's UCF101: the middle frame of each clip. torchvision has no image version of it, so
    each label of the split file is checked against the declaration's class name instead (as
    letters and digits: CoOp's Apply_Eye_Makeup is the declaration's Apply Eye Makeup)."""

    summary = "CoOp's UCF-101-midframes, CoOp's split"
    image_folder = "UCF-101-midframes"
    split_file = "split_zhou_UCF101.json"

    def default_layout(self, manifest):
        return (f"<data root>/{manifest.subdir}/UCF-101-midframes/<Action_Name>/<clip>.jpg, "
                f"{manifest.subdir}/split_zhou_UCF101.json")

    def row_problem(self, manifest, folder):
        names = manifest.class_names

        def problem(rel: str, label: int, name: str) -> str | None:
            if 0 <= label < len(names) and _words(name) != _words(names[label]):
                return f"names label {label} '{name}', the declaration '{names[label]}'"
            return None

        return problem


# --------------------------------------------------------------------------- kinds of arrays


@dataclass
class ArrayCheck(CheckResult):
    """A check of a dataset held in arrays: it says what was read instead of decoded files."""

    how: str = ""

    def lines(self) -> list[str]:
        return [f"  checked: {self.how}" if line.startswith("  checked: ") else line
                for line in super().lines()]


def _md5_notes(folder: Path, published: Any) -> list[str]:
    """Files whose md5 is not the one torchvision publishes (a valid but different copy)."""
    from torchvision.datasets.utils import check_md5

    return [f"{name}: md5 differs from torchvision's published file (a different copy)"
            for name, md5 in published
            if md5 and (folder / name).is_file() and not check_md5(str(folder / name), md5)]


class ArrayKind(TorchvisionReader, DatasetKind):
    """A dataset torchvision reads whole into arrays: one image per row, made a PIL RGB image
    when loaded. `arrays` returns (uint8 images N x H x W [x 3], labels). A declared `subset`
    keeps rows by `seeded_subset`'s rule, row `i` of a split named `<split>/<i>`."""

    check_how = ""

    def required(self, folder: Path, split: str) -> list[Path]:
        raise NotImplementedError

    def arrays(self, manifest: DatasetManifest, split: str, folder: Path) -> tuple[Any, list[int]]:
        raise NotImplementedError

    def published_md5(self) -> list[tuple[str, str]]:
        return []

    def read_split(self, manifest: DatasetManifest, split: str,
                   folder: Path) -> tuple[Any, list[int], list[str]]:
        """The split's images, labels and row names, checked (and subset where declared)."""
        from clbench.scenarios.datasets import ListedFile, Listing, seeded_subset

        _require(manifest, split, self.required(folder, split))
        images, labels = self.arrays(manifest, split, folder)
        if not len(labels):
            raise UserError(f"dataset '{manifest.name}': no images in its {split} split under "
                            f"{folder}", hint=_hint(manifest))
        _check_labels(manifest, split, labels)
        width = len(str(len(labels) - 1))
        rows = Listing([ListedFile(f"{split}/{i:0{width}d}", y) for i, y in enumerate(labels)],
                       [], [], None, folder)
        if manifest.subset:
            rows = seeded_subset(rows, **manifest.subset)
            keep = [int(row.rel.split("/")[1]) for row in rows]
            images, labels = images[keep], [labels[i] for i in keep]
        return images, labels, [row.rel for row in rows]

    def load_split(self, manifest, split, data_root, skip_corrupt) -> SplitData:
        import torch

        from clbench.scenarios.datasets import SplitData, dataset_dir

        images, labels, names = self.read_split(manifest, split, dataset_dir(manifest, data_root))

        def load(i: int):
            from PIL import Image

            return Image.fromarray(images[i]).convert("RGB")

        return SplitData(dataset=manifest.name, split=split, class_names=list(manifest.class_names),
                         templates=list(manifest.templates),
                         targets=torch.tensor(labels, dtype=torch.long),
                         sample_ids=[f"{manifest.name}/{name}" for name in names], load=load)

    def check(self, manifest, data_root):
        from clbench.scenarios.datasets import dataset_dir

        folder = dataset_dir(manifest, data_root)
        result = ArrayCheck(manifest.name, folder, None, how=self.check_how)
        declared = len(manifest.class_names)
        for split in manifest.splits:
            _, labels, _ = self.read_split(manifest, split, folder)
            result.counts[split], result.classes[split] = len(labels), len(set(labels))
            if result.classes[split] < declared:
                result.notes.append(f"{split}: {declared - result.classes[split]} class(es) have "
                                    "no images")
            published = manifest.expected.get(split)
            if published and not manifest.subset and published != len(labels):
                result.notes.append(f"{split}: {len(labels)} images; the published set has "
                                    f"{published}")
        result.notes += _md5_notes(folder, self.published_md5())
        return result


def _cifar100() -> type:
    from torchvision.datasets import CIFAR100

    class LocalCIFAR100(CIFAR100):
        # torchvision refuses pickles whose md5 is not the one it publishes (and hashes 180 MB on
        # every load to learn it). A copy that unpickles to the same arrays (re-pickled, the
        # tests' miniature one) is read as well; `clbench data check` notes an md5 that differs.
        train_list = [[name, None] for name, _ in CIFAR100.train_list]
        test_list = [[name, None] for name, _ in CIFAR100.test_list]
        meta = {**CIFAR100.meta, "md5": None}

    return LocalCIFAR100


@register_loader("cifar100")
class Cifar100Kind(ArrayKind):
    summary = "torchvision's CIFAR100 layout (python pickles)"
    folder_name = "cifar-100-python"
    check_how = ("read every image array (md5 against torchvision's published pickles; images "
                 "are arrays, nothing to prepare)")

    def default_layout(self, manifest):
        return "<data root>/cifar-100-python/{train,test,meta}"

    def required(self, folder, split):
        return [folder / split, folder / "meta"]

    def arrays(self, manifest, split, folder):
        data = self.read(manifest, folder, lambda root: _cifar100()(
            root, train=split == "train", download=False), "CIFAR100")
        _same_count(manifest, len(data.classes), f"{folder}/meta")
        return data.data, [int(y) for y in data.targets]

    def published_md5(self):
        from torchvision.datasets import CIFAR100

        return [(name, md5) for name, md5 in CIFAR100.train_list + CIFAR100.test_list] + [
            (CIFAR100.meta["filename"], CIFAR100.meta["md5"])]


@register_loader("mnist")
class MnistKind(ArrayKind):
    summary = "torchvision's MNIST layout (raw idx files)"
    folder_name = "MNIST"
    check_how = "read every image array (idx files; images are arrays, nothing to prepare)"
    stems = {"train": "train", "test": "t10k"}  # the idx files' prefixes

    def default_layout(self, manifest):
        return ("<data root>/MNIST/raw/{train,t10k}-images-idx3-ubyte, "
                "{train,t10k}-labels-idx1-ubyte")

    def required(self, folder, split):
        stem = self.stems.get(split, split)
        return [folder / "raw" / f"{stem}-images-idx3-ubyte",
                folder / "raw" / f"{stem}-labels-idx1-ubyte"]

    def arrays(self, manifest, split, folder):
        from torchvision.datasets import MNIST

        if split not in self.stems:
            raise UserError(f"dataset '{manifest.name}': torchvision's MNIST has no '{split}' "
                            "split", hint="declare splits among train, test")
        data = self.read(manifest, folder, lambda root: MNIST(
            root, train=split == "train", download=False), "MNIST")
        return data.data.numpy(), [int(y) for y in data.targets]
