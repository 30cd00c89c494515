"""The ImageNet family and the DALL-E stream (`clbench.scenarios.imagenet_kinds`): every
declaration loads with its class count; miniature copies in each release's own layout are read
through the public path (`load_dataset_manifest`, then `load_split`); the subsets (-A, -R,
ObjectNet, ImageNet-100) carry ImageNet's names for their classes; the DALL-E split is fixed,
20 + 10 and disjoint; bad input is a one-line error saying where the data was expected."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from clbench.cli.main import main
from clbench.errors import ConfigError, UserError
from clbench.scenarios.datasets import imagenet_names_and_templates, load_split
from clbench.scenarios.imagenet_kinds import (
    IMAGENET_WNIDS,
    OBJECTNET_BORDER,
    OBJECTNET_IMAGENET,
    split_rank,
)
from clbench.scenarios.manifests import load_dataset_manifest, use_manifest_dirs

NAMES, TEMPLATES = imagenet_names_and_templates()
INDEX = {wnid: i for i, wnid in enumerate(IMAGENET_WNIDS)}
A_WNIDS = load_dataset_manifest("imagenet-a").class_names
R_WNIDS = load_dataset_manifest("imagenet-r").class_names
IN100 = load_dataset_manifest("imagenet-100").class_names
OBJECTNET = load_dataset_manifest("objectnet")
CAPTIONS = list(load_dataset_manifest("dalle").class_names)
# three ObjectNet folders as the release names them, the rest made up for the miniature copy
ON_FOLDERS = {"Alarm clock": "alarm_clock", "Banana": "banana", "Bath towel": "full_sized_towel"}


def image_bytes(fmt: str, size: int = 12) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), (200, 40, 40)).save(out, format=fmt)
    return out.getvalue()


JPEG, PNG = image_bytes("JPEG"), image_bytes("PNG")


def put(folder: Path, names: list[str], data: bytes = JPEG) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(data)


def objectnet_folder(label: str) -> str:
    return ON_FOLDERS.get(label) or label.lower().replace(" ", "_").replace("/", "_")


def make_objectnet(base: Path, mappings: bool = True) -> None:
    """`base` = objectnet-1.0/: images/<folder>/ of the 113 classes (2 of "Banana") plus one
    class outside the overlap, and the two mapping files."""
    for label in OBJECTNET.class_names:
        put(base / "images" / objectnet_folder(label), ["a.png", "b.png"][:1 + (label == "Banana")],
            PNG)
    put(base / "images" / "squeegee", ["a.png"], PNG)
    if mappings:
        (base / "mappings").mkdir()
        folders = {objectnet_folder(label): label for label in OBJECTNET.class_names}
        (base / "mappings" / "folder_to_objectnet_label.json").write_text(
            json.dumps({**folders, "squeegee": "Squeegee"}))
        (base / "mappings" / "objectnet_to_imagenet_1k.json").write_text(json.dumps(
            {label: "(ImageNet names)" for label in OBJECTNET.class_names}))


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """One tiny image per class in each release's layout: ImageNet's train/ and val/ (two of
    tench in train), ImageNetV2, -A (two of stingray), -R (unpacked straight into its folder,
    the other layout), -Sketch and ObjectNet."""
    data = tmp_path_factory.mktemp("family")
    for wnid in IMAGENET_WNIDS:
        put(data / "imagenet" / "train" / wnid, [f"{wnid}_1.JPEG"] + [f"{wnid}_2.JPEG"] * (
            wnid == "n01440764"))
        put(data / "imagenet" / "val" / wnid, [f"ILSVRC2012_val_{INDEX[wnid]:08d}.JPEG"])
        put(data / "imagenet-sketch" / "sketch" / wnid, ["sketch_1.JPEG"])
        put(data / "imagenet-v2" / "imagenetv2-matched-frequency-format-val" / str(INDEX[wnid]),
            ["0a1b.jpeg"])
    for wnid in A_WNIDS:
        put(data / "imagenet-a" / "imagenet-a" / wnid, ["0.jpg", "1.jpg"][:1 + (
            wnid == "n01498041")])
    (data / "imagenet-a" / "imagenet-a" / "README.txt").write_text("not a class")
    for wnid in R_WNIDS:
        put(data / "imagenet-r" / wnid, ["art_0.jpg"])
    make_objectnet(data / "objectnet" / "objectnet-1.0")
    return data


def names_of(split) -> list[str]:
    return [split.class_names[y] for y in split.targets.tolist()]


def label_of(split, folder: str) -> str:
    """The class name of the (first) sample whose path has `folder` as its class folder."""
    i = next(i for i, s in enumerate(split.sample_ids) if f"/{folder}/" in s)
    return split.class_names[int(split.targets[i])]


# --------------------------------------------------------------------------- declarations


@pytest.mark.parametrize("name, classes, splits", [
    ("imagenet-1k", 1000, ("train", "test")), ("imagenet-v2", 1000, ("test",)),
    ("imagenet-a", 200, ("test",)), ("imagenet-r", 200, ("test",)),
    ("imagenet-sketch", 1000, ("test",)), ("objectnet", 113, ("test",)),
    ("imagenet-100", 100, ("train", "test")), ("dalle-stream", 22, ("train", "test"))])
def test_every_declaration_loads_with_its_classes(name, classes, splits):
    m = load_dataset_manifest(name)
    head = m.kind.head(m) if hasattr(m.kind, "head") else list(m.class_names)
    assert len(head) == classes and m.splits == splits and m.name == name
    assert m.description and m.obtain and m.layout and m.subdir
    if name != "dalle-stream":
        names = [n for _, n in head]
        assert set(names) <= set(NAMES)  # exactly ImageNet's names (open_clip's)
        assert classes == 1000 or len(set(names)) == classes


def test_subsets_are_imagenet_wnids_in_imagenet_order():
    assert list(IMAGENET_WNIDS) == sorted(IMAGENET_WNIDS) and len(set(IMAGENET_WNIDS)) == 1000
    for wnids in (A_WNIDS, R_WNIDS, IN100):
        assert list(wnids) == sorted(set(wnids)) and set(wnids) <= set(IMAGENET_WNIDS)
    assert set(OBJECTNET.class_names) == set(OBJECTNET_IMAGENET)
    assert sum(len(w) for w in OBJECTNET_IMAGENET.values()) == 125  # nine map to several
    assert all(set(w) <= set(IMAGENET_WNIDS) for w in OBJECTNET_IMAGENET.values())
    assert load_dataset_manifest("imagenet-100").subdir == load_dataset_manifest("imagenet-1k").subdir
    dalle, stream = load_dataset_manifest("dalle"), load_dataset_manifest("dalle-stream")
    assert stream.class_names == dalle.class_names and stream.subdir == dalle.subdir
    assert stream.templates == dalle.templates


# --------------------------------------------------------------------------- reading


def test_imagenet_1k_and_100_read_train_and_val(root):
    train = load_split(load_dataset_manifest("imagenet-1k"), "train", str(root))
    test = load_split(load_dataset_manifest("imagenet-1k"), "test", str(root))
    assert (len(train), len(test)) == (1001, 1000)
    assert train.class_names == NAMES and train.templates == TEMPLATES and len(TEMPLATES) == 80
    assert names_of(train)[:2] == ["tench", "tench"] and label_of(test, "n01498041") == "stingray"
    assert test.sample_ids[0] == "imagenet-1k/val/n01440764/ILSVRC2012_val_00000000.JPEG"

    small = load_dataset_manifest("imagenet-100")
    train, test = (load_split(small, split, str(root)) for split in ("train", "test"))
    assert (len(train), len(test)) == (101, 100)
    assert train.class_names == [NAMES[INDEX[w]] for w in IN100] == test.class_names
    assert all(label_of(test, w) == NAMES[INDEX[w]] for w in IN100[::17])


def test_shift_sets_read_their_layouts_with_imagenet_names(root):
    v2 = load_split(load_dataset_manifest("imagenet-v2"), "test", str(root))
    assert len(v2) == 1000 and v2.class_names == NAMES
    assert label_of(v2, "0") == "tench" and label_of(v2, "409") == "analog clock"
    sketch = load_split(load_dataset_manifest("imagenet-sketch"), "test", str(root))
    assert len(sketch) == 1000 and label_of(sketch, "n01443537") == "goldfish"

    a = load_split(load_dataset_manifest("imagenet-a"), "test", str(root))
    assert len(a) == 201 and a.class_names == [NAMES[INDEX[w]] for w in A_WNIDS]
    assert names_of(a)[:2] == ["stingray", "stingray"]  # n01498041, ImageNet's class 6
    assert label_of(a, "n07753592") == "banana" and a.class_names[0] == NAMES[6]
    r = load_split(load_dataset_manifest("imagenet-r"), "test", str(root))  # no inner folder
    assert len(r) == 200 and label_of(r, "n01443537") == "goldfish"
    assert r.sample_ids[0] == "imagenet-r/n01443537/art_0.jpg"


def test_objectnet_classes_are_imagenet_classes_by_its_mappings(root):
    data = load_split(OBJECTNET, "test", str(root))
    assert len(data) == 114 and len(data.class_names) == 113  # squeegee is not in the overlap
    assert label_of(data, "alarm_clock") == "analog clock"  # first of analog/digital clock
    assert label_of(data, "banana") == "banana" and label_of(data, "full_sized_towel") == "bath towel"
    assert data.class_names == sorted(data.class_names, key=NAMES.index)  # ImageNet's order
    assert data.templates == TEMPLATES
    cropped = data.load(0)
    assert cropped.size == (12 - 2 * OBJECTNET_BORDER,) * 2 and cropped.mode == "RGB"


def test_data_check_and_prepare_read_the_same_files(root, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(root / "imagenet-a", data / "imagenet-a")
    assert main(["data", "check", "imagenet-a", "--data-root", str(data)]) == 0
    out = capsys.readouterr().out
    assert "test: 201 images, 200 classes" in out and "the published set has 7500" in out
    assert main(["data", "prepare", "imagenet-a", "--data-root", str(data)]) == 0
    index = json.loads((data / "imagenet-a" / "manifest.json").read_text())
    assert index["totals"] == {"test": 201} and index["counts"]["test"]["n01498041"] == 2
    prepared = load_split(load_dataset_manifest("imagenet-a"), "test", str(data))
    assert prepared.prepared_sha256 and names_of(prepared)[:2] == ["stingray", "stingray"]
    assert main(["data", "check", "imagenet-a", "--data-root", str(data)]) == 0
    assert "sha256 against manifest.json" in capsys.readouterr().out


def test_imagenet_100_prepares_the_whole_folder_that_imagenet_reads(root, tmp_path):
    """ImageNet-100 and -1k share ImageNet's folder: preparing either indexes all of train/ and
    val/ under ImageNet's split names, which the `imagenet` control reads too."""
    data = tmp_path / "data"
    shutil.copytree(root / "imagenet", data / "imagenet")
    small = load_dataset_manifest("imagenet-100")
    report = small.kind.prepare(small, {}, str(data), log=lambda _: None)
    assert len(report["records"]) == 2001
    assert {r.split for r in report["records"]} == {"train", "val"}
    test = load_split(small, "test", str(data))
    assert len(test) == 100 and test.prepared_sha256
    control = load_split(load_dataset_manifest("imagenet"), "val", str(data))
    assert len(control) == 1000 and control.prepared_sha256 == test.prepared_sha256
    # preparing the `imagenet` control afterwards re-hashes val/ and keeps train/'s records
    assert main(["data", "prepare", "imagenet", "--data-root", str(data)]) == 0
    train = load_split(load_dataset_manifest("imagenet-1k"), "train", str(data))
    assert len(train) == 1001 and train.prepared_sha256


# --------------------------------------------------------------------------- DALL-E stream


def test_dalle_stream_splits_20_and_10_by_a_fixed_rule(tmp_path, capsys):
    source, data = tmp_path / "generated", tmp_path / "data"
    for caption in CAPTIONS:  # one beyond the paper's 30: left out
        put(source / caption, [f"{k:02d}.png" for k in range(31)], PNG)
    stream = load_dataset_manifest("dalle-stream")
    unprepared = tmp_path / "unprepared"
    shutil.copytree(source, unprepared / "dalle" / "test")
    first = {s: load_split(stream, s, str(unprepared)) for s in stream.splits}

    report = stream.kind.prepare(stream, {"--from": str(source)}, str(data), log=lambda _: None)
    assert len(report["records"]) == 22 * 31 and (data / "dalle" / "manifest.json").is_file()
    train, test = (load_split(stream, s, str(data)) for s in stream.splits)
    assert (len(train), len(test)) == (440, 220) and train.prepared_sha256
    assert train.class_names == CAPTIONS and train.templates == list(stream.templates)
    assert [train.targets.tolist().count(c) for c in range(22)] == [20] * 22
    assert [test.targets.tolist().count(c) for c in range(22)] == [10] * 22
    assert not set(train.sample_ids) & set(test.sample_ids)
    assert train.sample_ids == first["train"].sample_ids  # the index changes nothing
    assert test.sample_ids == first["test"].sample_ids

    caption = CAPTIONS[0]
    ranked = sorted((f"test/{caption}/{k:02d}.png" for k in range(31)), key=split_rank)
    assert ranked[0] == min(ranked, key=lambda p: hashlib.sha256(p.encode()).hexdigest())
    assert [s for s in train.sample_ids if f"/{caption}/" in s] == [
        f"dalle-stream/{p}" for p in sorted(ranked[:20])]
    assert {s for s in test.sample_ids if f"/{caption}/" in s} == {
        f"dalle-stream/{p}" for p in ranked[20:30]}

    assert main(["data", "check", "dalle-stream", "--data-root", str(data)]) == 0
    out = capsys.readouterr().out
    assert "train: 440 images, 22 classes" in out and "test: 220 images, 22 classes" in out
    assert "not in the file index" not in out and out.rstrip().endswith("OK")
    stray = next((data / "dalle" / "test").iterdir()) / "stray.png"
    stray.write_bytes(PNG)  # a file the index does not hold is noted, once
    assert main(["data", "check", "dalle-stream", "--data-root", str(data)]) == 0
    out = capsys.readouterr().out
    assert out.count("not in the file index") == 1 and "1 file(s)" in out


# --------------------------------------------------------------------------- bad input


def one_line(err: pytest.ExceptionInfo) -> str:
    assert "\n" not in str(err.value)
    return str(err.value)


def test_a_missing_or_misplaced_shift_set_says_where_it_was_expected(root, tmp_path):
    a = load_dataset_manifest("imagenet-a")
    with pytest.raises(UserError, match=r"dataset 'imagenet-a' \(test split\) not found: "
                                        r"expected .*imagenet-a/imagenet-a/<wnid>/ or "
                                        r".*imagenet-a/<wnid>/") as err:
        load_split(a, "test", str(tmp_path / "nowhere"))
    one_line(err)
    assert "people.eecs.berkeley.edu" in err.value.hint and "CLBENCH_DATA_IMAGENET_A" in err.value.hint

    put(tmp_path / "wrong" / "imagenet-a" / "images", ["x.jpg"])
    with pytest.raises(UserError, match=r"no class folders in .* \(expected 200 folders named by "
                                        r"<wnid>, e\.g\. n01498041; .* holds: images\)") as err:
        load_split(a, "test", str(tmp_path / "wrong"))
    one_line(err)

    data = tmp_path / "partial"
    shutil.copytree(root / "imagenet-a", data / "imagenet-a")
    shutil.rmtree(data / "imagenet-a" / "imagenet-a" / "n01498041")
    with pytest.raises(UserError, match=r"1 of its 200 class folders missing under "
                                        r".*imagenet-a: n01498041") as err:
        load_split(a, "test", str(data))
    one_line(err)

    with pytest.raises(UserError, match=r"dataset 'imagenet-1k' \(train split\) not found: "
                                        r"expected .*imagenet/train/<wnid>/"):
        load_split(load_dataset_manifest("imagenet-1k"), "train", str(tmp_path / "nowhere"))


def test_objectnet_without_its_mappings_is_refused(tmp_path):
    make_objectnet(tmp_path / "objectnet" / "objectnet-1.0", mappings=False)
    with pytest.raises(UserError, match=r"ObjectNet under .*objectnet-1\.0 has no "
                                        r"mappings/folder_to_objectnet_label\.json") as err:
        load_split(OBJECTNET, "test", str(tmp_path))
    one_line(err)
    assert "objectnet.dev" in err.value.hint
    mappings = tmp_path / "objectnet" / "objectnet-1.0" / "mappings"
    mappings.mkdir()
    (mappings / "folder_to_objectnet_label.json").write_text(json.dumps({"banana": "Banana"}))
    (mappings / "objectnet_to_imagenet_1k.json").write_text(json.dumps({"Banana": "banana"}))
    with pytest.raises(UserError, match=r"objectnet_to_imagenet_1k\.json lacks 112 of its "
                                        r"classes: Alarm clock") as err:
        load_split(OBJECTNET, "test", str(tmp_path))
    assert "not ObjectNet 1.0's mapping" in err.value.hint


def test_a_dalle_caption_with_too_few_images_is_named(tmp_path):
    for caption in CAPTIONS:
        put(tmp_path / "dalle" / "test" / caption, [f"{k:02d}.png" for k in range(30)], PNG)
    for extra in ("28.png", "29.png"):
        (tmp_path / "dalle" / "test" / "eating" / extra).unlink()
    with pytest.raises(UserError, match=r"dataset 'dalle-stream': caption 'eating' has 28 images "
                                        r"under .*dalle/test/eating, the split needs 30 \(20 train "
                                        r"\+ 10 test\)") as err:
        load_split(load_dataset_manifest("dalle-stream"), "test", str(tmp_path))
    one_line(err)


@pytest.mark.parametrize("declaration, message", [
    ("loader: imagenet-a\nclass_names: [n0149804]\n",
     r"class_names: 'n0149804' is not an ImageNet wnid \(did you mean 'n01498041'\?\)"),
    ("loader: imagenet-a\nclass_names: [n01498041, n01498041]\n",
     r"class_names lists n01498041 twice"),
    ("loader: objectnet\nclass_names: [Bananas]\n",
     r"'Bananas' is not one of ObjectNet's classes that overlap ImageNet \(did you mean "
     r"'Banana'\?\)"),
])
def test_a_declaration_names_its_classes_as_the_kind_reads_them(tmp_path, declaration, message):
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "mine.yaml").write_text(declaration + "splits: [test]\n")
    use_manifest_dirs([str(tmp_path)])
    try:
        mine = load_dataset_manifest("mine")
        with pytest.raises(ConfigError, match=message):
            mine.kind.head(mine)
    finally:
        use_manifest_dirs(None)
