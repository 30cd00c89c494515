"""MTIL's eleven datasets and CoOp's UCF101 read from miniature copies in their real on-disk
layouts (torchvision's, CoOp's split files and mid-frames), through the public path: the
declaration, then `load_split`. Each copy has three classes, so the tests declare those three
(`with_classes`); the built-in declarations are checked on their own."""

from __future__ import annotations

import json
import pickle
import shutil
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from paper_data import tiny_image

from clbench.cli.main import main
from clbench.errors import UserError
from clbench.scenarios.check import check_dataset
from clbench.scenarios.datasets import load_split
from clbench.scenarios.manifests import load_dataset_manifest, use_manifest_dirs

DATASETS = {  # name: (classes, splits)
    "aircraft": (100, ("train", "val", "test")), "caltech101": (100, ("train", "val", "test")),
    "cifar100": (100, ("train", "test")), "dtd": (47, ("train", "val", "test")),
    "eurosat": (10, ("train", "val", "test")), "flowers": (102, ("train", "val", "test")),
    "food": (101, ("train", "test")), "mnist": (10, ("train", "test")),
    "oxford-pet": (37, ("train", "test")), "cars": (196, ("train", "test")),
    "sun397": (397, ("train", "val", "test")), "ucf101": (101, ("train", "val", "test")),
}
PER_SPLIT = {"train": 2, "val": 1, "test": 1}  # images per class in each miniature split


def image(path: Path, seed: int) -> Path:
    return tiny_image(path, seed, size=8, fmt="JPEG")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def split_file(path: Path, rows: dict[str, list[list]]) -> None:
    """CoOp's split_zhou_<Name>.json: {split: [[path, label, class name], ...]}."""
    write(path, json.dumps(rows))


def per_split(classes: list[str], splits=("train", "val", "test")):
    """(split, label, class, n) for every miniature image, n counting from 0."""
    n = 0
    for split in splits:
        for label, name in enumerate(classes):
            for _ in range(PER_SPLIT[split]):
                yield split, label, name, n
                n += 1


# --------------------------------------------------------------------------- miniature copies


def make_aircraft(root: Path) -> list[str]:
    data = root / "fgvc-aircraft-2013b" / "data"
    variants = ["707-320", "A300B4", "F/A-18"]
    write(data / "variants.txt", "\n".join(variants) + "\n")
    lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for split, _, name, n in per_split(variants):
        image(data / "images" / f"{1000000 + n}.jpg", n)
        lines[split].append(f"{1000000 + n} {name}")
    for split, rows in lines.items():
        write(data / f"images_variant_{split}.txt", "\n".join(rows) + "\n")
    return variants


def make_caltech(root: Path) -> list[str]:
    images = root / "caltech101" / "101_ObjectCategories"
    folders = ["Faces", "Leopards", "accordion"]  # CoOp's labels 0, 1, 2
    for other in ("BACKGROUND_Google", "Faces_easy"):  # in the archive, not in CoOp's classes
        image(images / other / "image_0001.jpg", 99)
    rows: dict[str, list] = {"train": [], "val": [], "test": []}
    for split, label, folder, n in per_split(folders):
        rel = f"{folder}/image_{n + 1:04d}.jpg"
        image(images / rel, n)
        rows[split].append([rel, label, folder.lower()])
    split_file(root / "caltech101" / "split_zhou_Caltech101.json", rows)
    return ["off-center face", "leopard", "accordion"]


def make_cifar(root: Path) -> list[str]:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    fine = ["apple", "aquarium_fish", "baby"]
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        labels = [label for label in range(3) for _ in range(PER_SPLIT[split])]
        batch = {"data": rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8),
                 "fine_labels": labels, "coarse_labels": [0] * len(labels),
                 "filenames": [f"{i}.png" for i in range(len(labels))]}
        (folder / split).write_bytes(pickle.dumps(batch))
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": fine,
                                                "coarse_label_names": ["fruit"]}))
    return [name.replace("_", " ") for name in fine]


def make_dtd(root: Path) -> list[str]:
    data = root / "dtd" / "dtd"
    textures = ["banded", "blotchy", "braided"]
    lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for split, _, name, n in per_split(textures):
        image(data / "images" / name / f"{name}_{n:04d}.jpg", n)
        lines[split].append(f"{name}/{name}_{n:04d}.jpg")
    for split, rows in lines.items():
        write(data / "labels" / f"{split}1.txt", "\n".join(rows) + "\n")
    return textures


def make_eurosat(root: Path) -> list[str]:
    folders = ["AnnualCrop", "Forest", "HerbaceousVegetation"]
    rows: dict[str, list] = {"train": [], "val": [], "test": []}
    for split, label, folder, n in per_split(folders):
        rel = f"{folder}/{folder}_{n + 1}.jpg"
        image(root / "eurosat" / "2750" / rel, n)
        rows[split].append([rel, label, folder])
    split_file(root / "eurosat" / "split_zhou_EuroSAT.json", rows)
    return ["annual crop land", "forest", "brushland or shrubland"]


def make_flowers(root: Path) -> list[str]:
    from scipy.io import savemat

    folder = root / "flowers-102"
    ids: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    labels = []
    for split, label, _, n in per_split(["a", "b", "c"]):
        image(folder / "jpg" / f"image_{n + 1:05d}.jpg", n)
        ids[split].append(n + 1)
        labels.append(label + 1)
    savemat(folder / "imagelabels.mat", {"labels": np.array(labels)})
    savemat(folder / "setid.mat", {"trnid": np.array(ids["train"]), "valid": np.array(ids["val"]),
                                   "tstid": np.array(ids["test"])})
    return ["pink primrose", "hard-leaved pocket orchid", "canterbury bells"]


def make_food(root: Path) -> list[str]:
    folder = root / "food-101"
    dishes = ["apple_pie", "baby_back_ribs", "baklava"]
    meta: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    for split, _, dish, n in per_split(dishes, ("train", "test")):
        image(folder / "images" / dish / f"{1000 + n}.jpg", n)
        meta[split].setdefault(dish, []).append(f"{dish}/{1000 + n}")
    for split, body in meta.items():
        write(folder / "meta" / f"{split}.json", json.dumps(body))
    return [d.replace("_", " ") for d in dishes]


def make_mnist(root: Path) -> list[str]:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for split, stem in (("train", "train"), ("test", "t10k")):
        labels = [label for label in range(3) for _ in range(PER_SPLIT[split])]
        pixels = rng.integers(0, 256, (len(labels), 8, 8), dtype=np.uint8)
        (raw / f"{stem}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 2051, len(labels), 8, 8) + pixels.tobytes())
        (raw / f"{stem}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 2049, len(labels)) + bytes(labels))
    return ["0", "1", "2"]


def make_pets(root: Path) -> list[str]:
    folder = root / "oxford-iiit-pet"
    breeds = ["Abyssinian", "american_bulldog", "american_pit_bull_terrier"]  # class ids 1-3
    lines: dict[str, list[str]] = {"trainval": [], "test": []}
    for split, label, breed, n in per_split(breeds, ("train", "test")):
        image(folder / "images" / f"{breed}_{n}.jpg", n)
        species = 1 if breed[0].isupper() else 2  # cats are capitalised
        lines["trainval" if split == "train" else "test"].append(
            f"{breed}_{n} {label + 1} {species} {label + 1}")
    for split, rows in lines.items():
        write(folder / "annotations" / f"{split}.txt", "\n".join(rows) + "\n")
    return ["Abyssinian", "american bulldog", "american pit bull terrier"]


def make_cars(root: Path) -> list[str]:
    from scipy.io import savemat

    folder = root / "stanford_cars"
    models = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012"]
    (folder / "devkit").mkdir(parents=True)
    savemat(folder / "devkit" / "cars_meta.mat", {"class_names": np.array(models, dtype=object)})
    fields = [(f, "O") for f in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")]
    annotations: dict[str, list] = {"train": [], "test": []}
    for split, label, _, n in per_split(models, ("train", "test")):
        name = f"{n + 1:05d}.jpg"
        image(folder / f"cars_{split}" / name, n)
        annotations[split].append((1, 1, 7, 7, label + 1, name))
    savemat(folder / "devkit" / "cars_train_annos.mat",
            {"annotations": np.array(annotations["train"], dtype=fields)})
    savemat(folder / "cars_test_annos_withlabels.mat",
            {"annotations": np.array(annotations["test"], dtype=fields)})
    return models


def make_sun(root: Path) -> list[str]:
    folder = root / "SUN397"
    scenes = ["a/abbey", "a/airplane_cabin", "a/apartment_building/outdoor"]
    write(folder / "ClassName.txt", "".join(f"/{s}\n" for s in scenes))
    rows: dict[str, list] = {"train": [], "val": [], "test": []}
    for split, label, scene, n in per_split(scenes):
        rel = f"{scene}/sun_{n:08d}.jpg"
        image(folder / rel, n)
        rows[split].append([rel, label, " ".join(scene.split("/")[1:][::-1])])
    split_file(folder / "split_zhou_SUN397.json", rows)
    return ["abbey", "airplane cabin", "apartment building outdoor"]


def make_ucf(root: Path) -> list[str]:
    folder = root / "ucf101"
    actions = ["Apply_Eye_Makeup", "Apply_Lipstick", "Archery"]
    rows: dict[str, list] = {"train": [], "val": [], "test": []}
    for split, label, action, n in per_split(actions):
        rel = f"{action}/v_{action.replace('_', '')}_g{n:02d}_c01.jpg"
        image(folder / "UCF-101-midframes" / rel, n)
        rows[split].append([rel, label, action])
    split_file(folder / "split_zhou_UCF101.json", rows)
    return ["Apply Eye Makeup", "Apply Lipstick", "Archery"]


MAKERS = {"aircraft": make_aircraft, "caltech101": make_caltech, "cifar100": make_cifar,
          "dtd": make_dtd, "eurosat": make_eurosat, "flowers": make_flowers, "food": make_food,
          "mnist": make_mnist, "oxford-pet": make_pets, "cars": make_cars, "sun397": make_sun,
          "ucf101": make_ucf}
FOLDERS = {"aircraft": "fgvc-aircraft-2013b", "caltech101": "caltech101",
           "cifar100": "cifar-100-python", "dtd": "dtd", "eurosat": "eurosat",
           "flowers": "flowers-102", "food": "food-101", "mnist": "MNIST",
           "oxford-pet": "oxford-iiit-pet", "cars": "stanford_cars", "sun397": "SUN397",
           "ucf101": "ucf101"}


@pytest.fixture(scope="module")
def copies(tmp_path_factory) -> tuple[Path, dict[str, list[str]]]:
    """One data root with a miniature copy of all twelve; the class names of each copy."""
    root = tmp_path_factory.mktemp("torchvision")
    return root, {name: make(root) for name, make in MAKERS.items()}


def with_classes(name: str, classes: list[str]):
    return replace(load_dataset_manifest(name), class_names=tuple(classes))


def copy_of(copies, name: str, tmp_path: Path) -> Path:
    shutil.copytree(copies[0] / FOLDERS[name], tmp_path / FOLDERS[name])
    return tmp_path


# --------------------------------------------------------------------------- declarations


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_the_declarations(name):
    classes, splits = DATASETS[name]
    m = load_dataset_manifest(name)
    assert m.splits == splits and {"train", "test"} <= set(m.splits)
    assert m.subdir == FOLDERS[name] and m.kind.name == m.loader
    assert len(m.class_names) == len(set(m.class_names)) == classes
    assert m.templates and all(t.count("{}") == 1 for t in m.templates)
    assert set(m.expected) == set(splits) and m.description and m.obtain and m.layout


def test_the_class_orders_of_the_published_labels():
    """Spot checks where the label order is not the alphabetical one of CLIP's lists."""
    pets = load_dataset_manifest("oxford-pet").class_names
    assert pets[:6] == ("Abyssinian", "american bulldog", "american pit bull terrier",
                        "basset hound", "beagle", "Bengal")  # annotations' class ids 1-6
    ucf = load_dataset_manifest("ucf101").class_names  # UCF101's classInd.txt, CoOp's labels
    assert ucf[34:37] == ("Hammering", "Hammer Throw", "Handstand Pushups")
    assert ucf[46:48] == ("Jumping Jack", "Jump Rope")
    assert load_dataset_manifest("eurosat").class_names[2] == "brushland or shrubland"
    caltech = load_dataset_manifest("caltech101").class_names
    assert caltech[:4] == ("off-center face", "leopard", "motorbike", "accordion")
    assert "centered face" not in caltech and "background" not in caltech
    assert load_dataset_manifest("aircraft").templates[0] == "a photo of a {}, a type of aircraft."


# --------------------------------------------------------------------------- reading the copies


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_each_reads_its_real_layout(copies, name):
    root, classes = copies
    manifest = with_classes(name, classes[name])
    for split in manifest.splits:
        data = load_split(manifest, split, str(root))
        assert data.class_names == classes[name] and data.split == split
        assert sorted(data.targets.tolist()) == [y for y in range(3)
                                                 for _ in range(PER_SPLIT[split])]
        assert len(set(data.sample_ids)) == len(data) and not data.skipped
        first = data.load(0)
        assert first.mode == "RGB" and first.size == ((32, 32) if name == "cifar100" else (8, 8))


def test_labels_follow_the_files(copies):
    """A file's label is its class: the class folder, the annotation or the split file's."""
    root, classes = copies
    dtd = load_split(with_classes("dtd", classes["dtd"]), "train", str(root))
    assert all(sid.split("/")[3] == classes["dtd"][y]
               for sid, y in zip(dtd.sample_ids, dtd.targets.tolist()))
    caltech = load_split(with_classes("caltech101", classes["caltech101"]), "test", str(root))
    assert [(s.split("/")[2], y) for s, y in zip(caltech.sample_ids, caltech.targets.tolist())] \
        == [("Faces", 0), ("Leopards", 1), ("accordion", 2)]
    sun = load_split(with_classes("sun397", classes["sun397"]), "val", str(root))
    assert sun.sample_ids[2].startswith("sun397/a/apartment_building/outdoor/")
    assert sun.targets.tolist() == [0, 1, 2]


def test_a_declared_subset_of_arrays_is_seeded(copies):
    root, classes = copies
    mnist = replace(with_classes("mnist", classes["mnist"]), subset={"per_class": 1, "seed": 3})
    first, again = (load_split(mnist, "train", str(root)) for _ in range(2))
    assert first.sample_ids == again.sample_ids and sorted(first.targets.tolist()) == [0, 1, 2]
    assert all(sid.startswith("mnist/train/") for sid in first.sample_ids)
    assert first.load(2).size == (8, 8) and check_dataset(mnist, str(root)).counts["train"] == 3


def test_prepare_pins_checksums_and_keeps_the_order(copies, tmp_path, capsys):
    root, classes = copies
    data = copy_of(copies, "aircraft", tmp_path)
    manifest = with_classes("aircraft", classes["aircraft"])
    before = load_split(manifest, "train", str(data))
    report = manifest.kind.prepare(manifest, {}, str(data))
    assert report["index"] == data / "fgvc-aircraft-2013b" / "manifest.json"
    after = load_split(manifest, "train", str(data))
    assert after.prepared_sha256 and after.sample_ids == before.sample_ids
    assert after.targets.tolist() == before.targets.tolist()
    result = check_dataset(manifest, str(data))
    assert result.ok and result.counts == {"train": 6, "val": 3, "test": 3}
    assert "train: 6 images; the published set has 3334" in result.notes


def test_check_counts_each_split_against_the_published_sizes(copies):
    root, classes = copies
    result = check_dataset(with_classes("sun397", classes["sun397"]), str(root))
    assert result.ok and result.counts == {"train": 6, "val": 3, "test": 3}
    assert result.classes == {"train": 3, "val": 3, "test": 3}
    assert "test: 3 images; the published set has 19850" in result.notes
    cifar = check_dataset(with_classes("cifar100", classes["cifar100"]), str(root))
    lines = "\n".join(cifar.lines())
    assert cifar.ok and cifar.counts == {"train": 6, "test": 3}
    assert "checked: read every image array" in lines and "manifest.json" not in lines
    assert "train: md5 differs from torchvision's published file" in lines


def test_data_check_prints_the_counts(copies, tmp_path, capsys):
    """`clbench data check` on a declaration of the miniature copy's three classes."""
    root, classes = copies
    mine = tmp_path / "manifests" / "datasets" / "mini-ucf.yaml"
    write(mine, "include: ucf101\nclass_names: [" + ", ".join(classes["ucf101"]) + "]\n")
    use_manifest_dirs([str(tmp_path / "manifests")])
    try:
        assert main(["data", "check", "mini-ucf", "--data-root", str(root)]) == 0
    finally:
        use_manifest_dirs(None)
    out = capsys.readouterr().out
    assert f"mini-ucf: {root / 'ucf101'}" in out and "val: 3 images, 3 classes" in out
    assert "note: train: 6 images; the published set has 7639" in out and out.endswith("OK\n")


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("name, expected", [
    ("cifar100", "cifar-100-python/train"),
    ("aircraft", "fgvc-aircraft-2013b/data/images"),
    ("mnist", "MNIST/raw/train-images-idx3-ubyte"),
    ("cars", "stanford_cars/devkit/cars_meta.mat"),
    ("caltech101", "caltech101/101_ObjectCategories"),
    ("ucf101", "ucf101/UCF-101-midframes"),
])
def test_a_missing_copy_names_what_was_expected(tmp_path, capsys, name, expected):
    assert main(["data", "check", name, "--data-root", str(tmp_path)]) == 2
    error, hint = capsys.readouterr().err.strip().split("\n")  # one line each
    assert error.startswith(f"error: dataset '{name}' (train split) not found: expected ")
    assert str(tmp_path / expected) in error
    assert hint.startswith("hint: ") and "Expected layout:" in hint and "CLBENCH_DATA" in hint
    assert list(tmp_path.iterdir()) == []  # nothing created (torchvision's Caltech101 would)


def test_a_wrong_layout_names_the_missing_files(copies, tmp_path):
    root, classes = copies
    data = copy_of(copies, "dtd", tmp_path)
    (data / "dtd" / "dtd" / "labels" / "val1.txt").unlink()
    manifest = with_classes("dtd", classes["dtd"])
    assert len(load_split(manifest, "train", str(data))) == 6
    with pytest.raises(UserError, match=r"\(val split\) not found: expected .*labels/val1.txt"):
        load_split(manifest, "val", str(data))
    data = copy_of(copies, "caltech101", tmp_path)
    shutil.rmtree(data / "caltech101" / "101_ObjectCategories" / "BACKGROUND_Google")
    with pytest.raises(UserError, match="expected .*101_ObjectCategories/BACKGROUND_Google"):
        load_split(with_classes("caltech101", classes["caltech101"]), "train", str(data))


def test_a_missing_split_file_says_where_and_how_to_get_it(copies, tmp_path):
    root, classes = copies
    data = copy_of(copies, "sun397", tmp_path)
    (data / "SUN397" / "split_zhou_SUN397.json").unlink()
    with pytest.raises(UserError) as err:
        load_split(with_classes("sun397", classes["sun397"]), "train", str(data))
    assert str(err.value) == (
        f"dataset 'sun397' (train split): CoOp's split_zhou_SUN397.json expected at "
        f"{data / 'SUN397' / 'split_zhou_SUN397.json'}; obtain it from the link in CoOp's "
        "DATASETS.md (https://github.com/KaiyangZhou/CoOp/blob/main/DATASETS.md)")
    assert "Expected layout:" in err.value.hint


def test_a_split_file_of_another_order_or_dataset_is_refused(copies, tmp_path):
    root, classes = copies
    data = copy_of(copies, "eurosat", tmp_path)
    path = data / "eurosat" / "split_zhou_EuroSAT.json"
    rows = json.loads(path.read_text())
    rows["train"][0][1] = 2  # AnnualCrop labelled as the third class
    path.write_text(json.dumps(rows))
    manifest = with_classes("eurosat", classes["eurosat"])
    with pytest.raises(UserError, match=r"labels AnnualCrop/AnnualCrop_1.jpg \(AnnualCrop\) 2, "
                                        r"torchvision's class order 0"):
        load_split(manifest, "train", str(data))
    path.write_text("{\"train\": [[\"AnnualCrop/x.jpg\", 0]]}")
    with pytest.raises(UserError, match="is not CoOp's"):
        load_split(manifest, "train", str(data))
    with pytest.raises(UserError, match="has no 'val' list"):
        load_split(manifest, "val", str(data))
    data = copy_of(copies, "ucf101", tmp_path)
    path = data / "ucf101" / "split_zhou_UCF101.json"
    rows = json.loads(path.read_text())
    rows["test"][0][2] = "Archery"
    path.write_text(json.dumps(rows))
    with pytest.raises(UserError, match="names label 0 'Archery', the declaration 'Apply Eye"):
        load_split(with_classes("ucf101", classes["ucf101"]), "test", str(data))


def test_a_partial_copy_is_not_read_as_the_full_dataset(copies):
    root, _ = copies
    with pytest.raises(UserError, match=r"variants.txt has 3 classes, the declaration 100 class"):
        load_split(load_dataset_manifest("aircraft"), "train", str(root))
    with pytest.raises(UserError, match="label 2 is not one of the declaration's 2 classes"):
        load_split(with_classes("flowers", ["a", "b"]), "train", str(root))


def test_a_folder_torchvision_would_not_find_is_named(copies, tmp_path, monkeypatch):
    root, classes = copies
    shutil.copytree(root / "cifar-100-python", tmp_path / "my-cifar")
    monkeypatch.setenv("CLBENCH_DATA_CIFAR100", str(tmp_path / "my-cifar"))
    with pytest.raises(UserError, match="only from a folder named 'cifar-100-python'"):
        load_split(with_classes("cifar100", classes["cifar100"]), "train")
    monkeypatch.setenv("CLBENCH_DATA_CIFAR100", str(root / "cifar-100-python"))
    assert len(load_split(with_classes("cifar100", classes["cifar100"]), "test", "/nowhere")) == 3
