"""GTSRB, DALL-E and ImageNet from local folders, `clbench data check`, corrupt files, data
roots, and the paper's scenarios built on miniature copies of all four datasets."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from paper_data import make_dalle, make_gtsrb, make_imagenet, make_videos, tiny_image, tree_bytes

from clbench.cli.main import main
from clbench.errors import UserError
from clbench.scenarios import tsi
from clbench.scenarios.datasets import dataset_dir, load_split, seeded_subset
from clbench.scenarios.manifests import load_dataset_manifest, load_scenario_manifest
from clbench.scenarios.stream import load_scenario
from clbench.store import Store

CAPTIONS = list(load_dataset_manifest("tsi").class_names)
GTS = load_dataset_manifest("gts")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A data root with TSI (prepared from clips), DALL-E (prepared), GTSRB and ImageNet."""
    base = tmp_path_factory.mktemp("paper")
    data = base / "data"
    make_videos(base / "videos")
    assert main(["data", "prepare", "tsi", "--videos", str(base / "videos"), "--data-root",
                 str(data)]) == 0
    make_dalle(base / "generated", CAPTIONS)
    assert main(["data", "prepare", "dalle", "--from", str(base / "generated"), "--data-root",
                 str(data)]) == 0
    make_gtsrb(data / "gtsrb")
    make_imagenet(data / "imagenet")
    return data


def copy_of(root: Path, name: str, tmp_path: Path) -> Path:
    shutil.copytree(root / name, tmp_path / name)
    return tmp_path


def test_gtsrb_through_torchvision_with_official_session_order(root):
    train = load_split(GTS, "train", str(root))
    test = load_split(GTS, "test", str(root))
    assert len(train) == 86 and len(test) == 43 and len(train.class_names) == 43
    assert train.targets.tolist() == [c for c in range(43) for _ in range(2)]
    assert test.targets.tolist()[0] == 42  # test labels come from GT-final_test.csv
    assert GTS.templates[0] == 'a zoomed in photo of a "{}" traffic sign.'
    scenario = load_scenario("gts-20shot", seed=0, data_root=str(root))
    assert [len(s.class_ids) for s in scenario.sessions] == [9, 9, 9, 8, 8]
    assert scenario.sessions[0].class_ids == [25, 2, 11, 1, 40, 27, 5, 9, 17]
    assert scenario.sessions[4].class_ids == [30, 28, 31, 7, 16, 4, 36, 8]
    assert [e.name for e in scenario.eval_sets] == ["gts", "imagenet"]


def test_prepare_gts_pins_checksums(root, tmp_path, capsys):
    data = copy_of(root, "gtsrb", tmp_path)
    assert main(["data", "prepare", "gts", "--root", str(data)]) == 0
    assert "86" in capsys.readouterr().out
    body = json.loads((data / "gtsrb" / "manifest.json").read_text())
    assert body["totals"] == {"test": 43, "train": 86}
    assert body["counts"]["train"][GTS.class_names[25]] == 2
    assert main(["data", "check", "gts", "--data-root", str(data)]) == 0
    assert "sha256 against manifest.json" in capsys.readouterr().out


def test_dalle_prepare_validates_captions_and_images(root, tmp_path, capsys):
    body = json.loads((root / "dalle" / "manifest.json").read_text())
    assert body["totals"] == {"test": 44}
    assert body["info"]["generation_prompts"]["holding a black kettle"] == \
        "A person person holding a black kettle"  # appendix A.2, verbatim
    dalle = load_split(load_dataset_manifest("dalle"), "test", str(root))
    assert dalle.class_names == CAPTIONS and len(dalle) == 44

    source = make_dalle(tmp_path / "gen", CAPTIONS, per_caption=1)
    (source / "watching TV").rename(source / "watching tv")
    assert main(["data", "prepare", "dalle", "--from", str(source), "--out",
                 str(tmp_path / "out")]) == 2
    assert "did you mean 'watching TV'" in capsys.readouterr().err
    (source / "watching tv").rename(source / "watching TV")
    (source / "eating" / "00.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert main(["data", "prepare", "dalle", "--from", str(source), "--out",
                 str(tmp_path / "out")]) == 2
    assert "eating/00.png" in capsys.readouterr().err
    assert main(["data", "prepare", "dalle", "--from", str(source), "--out",
                 str(tmp_path / "out"), "--skip-corrupt"]) == 0
    kept = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert kept["totals"] == {"test": 21} and kept["info"]["skipped"]["corrupt"] == [
        "eating/00.png"]


def test_imagenet_names_templates_and_seeded_subset(root):
    full = load_split(load_dataset_manifest("imagenet"), "val", str(root))
    assert len(full.class_names) == 1000 and full.class_names[0] == "tench"
    assert len(full.templates) == 80 and full.templates[0] == "a bad photo of a {}."
    assert len(full) == 2000 and full.targets[:4].tolist() == [0, 0, 1, 1]
    small = load_split(load_dataset_manifest("imagenet-10pc"), "val", str(root))
    assert len(small) == 2000  # 10 per class, but only 2 here
    from clbench.scenarios.datasets import list_files

    listing = list_files(load_dataset_manifest("imagenet"), "val", root / "imagenet")
    one = seeded_subset(listing, per_class=1, seed=0)
    assert len(one) == 1000 and len({f.label for f in one}) == 1000
    assert [f.rel for f in seeded_subset(listing.like(reversed(listing)), 1, 0)] == \
        [f.rel for f in reversed(one)]  # the choice does not depend on listing order
    other = seeded_subset(listing, per_class=1, seed=1)
    assert [f.rel for f in other] != [f.rel for f in one]


@pytest.mark.parametrize("name, sizes", [
    ("tsi-20shot", [6, 4, 5, 4, 3]), ("tsi-50shot", [6, 4, 5, 4, 3]), ("tsi-offline", [22]),
    ("tsi-20shot-actions", None), ("gts-50shot", [9, 9, 9, 8, 8]), ("gts-offline", [43]),
])
def test_paper_scenarios_build_on_the_miniature_data(root, name, sizes):
    scenario = load_scenario(name, seed=0, data_root=str(root))
    if sizes:
        assert [len(s.class_ids) for s in scenario.sessions] == sizes
    record = scenario.data_record()
    assert set(record) == {e.name for e in scenario.eval_sets}
    assert set(scenario.dataset_hashes) == set(record)
    if scenario.manifest.target == "tsi":
        assert record["tsi"]["prepared_manifest_sha256"]
        assert record["dalle"]["prepared_manifest_sha256"]


def test_official_action_grouping_lets_captions_recur(root):
    manifest = load_scenario_manifest("tsi-20shot-actions")
    scenario = load_scenario("tsi-20shot-actions", seed=0, data_root=str(root))
    walking = CAPTIONS.index("walking")
    assert [walking in s.class_ids for s in scenario.sessions] == [True, True, False, False,
                                                                    True]
    groups = scenario.train.groups
    start = 0
    for session, size in zip(scenario.sessions, manifest.session_sizes):
        actions = set(manifest.class_order[start:start + size])
        start += size
        assert {groups[i] for i in session.sample_indices} == actions
        assert {tsi.ACTION_CAPTIONS[a] for a in actions} == set(session.class_names)
    disjoint = load_scenario("tsi-20shot", seed=0, data_root=str(root))
    seen: set[int] = set()
    for session in disjoint.sessions:
        assert not seen & set(session.class_ids)
        seen |= set(session.class_ids)
    assert len(seen) == 22


def test_data_check_reports_corrupt_and_missing_files(root, tmp_path, capsys):
    data = copy_of(root, "tsi", tmp_path)
    assert main(["data", "check", "tsi", "--data-root", str(data)]) == 0
    out = capsys.readouterr().out
    assert "train: 28 images, 22 classes" in out and "OK" in out
    victim = sorted((data / "tsi" / "test" / "eating").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:100])  # truncated
    gone = sorted((data / "tsi" / "train" / "walking").iterdir())[0]
    gone.unlink()
    assert main(["data", "check", "tsi", "--data-root", str(data)]) == 2
    captured = capsys.readouterr()
    assert f"corrupt: test/eating/{victim.name}" in captured.out
    assert f"missing: train/walking/{gone.name}" in captured.out
    assert "1 missing" in captured.err and "1 corrupt" in captured.err
    assert main(["data", "check", "tsi", "--data-root", str(data), "--skip-corrupt"]) == 0
    capsys.readouterr()

    with pytest.raises(UserError, match=f"train/walking/{gone.name}") as failure:
        load_scenario("tsi-offline", seed=0, data_root=str(data))
    assert "--skip-corrupt" in failure.value.hint
    for name in ("dalle", "imagenet"):
        shutil.copytree(root / name, data / name)
    scenario = load_scenario("tsi-offline", seed=0, data_root=str(data), skip_corrupt=True)
    assert len(scenario.train) == 27 and len(scenario.target.data) == 27
    assert scenario.data_record()["tsi"]["skipped_files"] == sorted(
        [f"test/eating/{victim.name}", f"train/walking/{gone.name}"])


def test_unprepared_folder_is_checked_by_decoding(root, tmp_path, capsys):
    data = copy_of(root, "imagenet", tmp_path)
    bad = data / "imagenet" / "val" / "n00000007" / "ILSVRC2012_val_00000014.JPEG"
    bad.write_bytes(bad.read_bytes()[:40])
    assert main(["data", "check", "imagenet-10pc", "--data-root", str(data), "--json"]) == 2
    result = json.loads(capsys.readouterr().out)
    assert result["corrupt"] == ["val/n00000007/ILSVRC2012_val_00000014.JPEG"]
    assert result["prepared_manifest_sha256"] is None and result["counts"] == {"val": 2000}
    with pytest.raises(UserError, match="n00000007/ILSVRC2012_val_00000014.JPEG"):
        load_split(load_dataset_manifest("imagenet"), "val", str(data))  # a run's quick check


def test_stored_run_records_data_hashes_and_skipped_files(root, tmp_path, capsys):
    data = copy_of(root, "tsi", tmp_path)
    shutil.copytree(root / "dalle", data / "dalle")
    victim = sorted((data / "dalle" / "test" / "eating").iterdir())[0]
    victim.write_bytes(b"not an image")
    scenario = tmp_path / "tsi-mini.yaml"
    scenario.write_text("name: tsi-mini\ntarget: tsi\nprotocol: offline\neval_sets: [dalle]\n"
                        "training: {epochs: 1, batch_size: 64, lr: 1.0e-5}\n")
    db = tmp_path / "runs.db"
    args = ["run", "--strategy", "zeroshot", "--scenario", str(scenario), "--data-root",
            str(data), "--db", str(db), "--quiet", "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"test/eating/{victim.name}" in err and "--skip-corrupt" in err
    assert main([*args, "--skip-corrupt"]) == 0
    store = Store(f"sqlite:///{db}", create=False)
    (run,) = store.list_runs()
    config = store.get_run(run["id"])["config"]
    assert set(config["dataset_manifest_hashes"]) == {"tsi", "dalle"}
    datasets = config["data"]["datasets"]
    assert config["data"]["skip_corrupt"] is True
    assert datasets["dalle"]["skipped_files"] == [f"test/eating/{victim.name}"]
    assert datasets["tsi"]["prepared_manifest_sha256"] == \
        __import__("hashlib").sha256((data / "tsi" / "manifest.json").read_bytes()).hexdigest()


def test_data_roots_and_missing_data_messages(root, monkeypatch, capsys):
    imagenet = load_dataset_manifest("imagenet-10pc")
    monkeypatch.delenv("CLBENCH_DATA_IMAGENET", raising=False)
    monkeypatch.setenv("CLBENCH_DATA", "/somewhere")
    assert dataset_dir(imagenet) == Path("/somewhere/imagenet")
    assert dataset_dir(imagenet, "/elsewhere") == Path("/elsewhere/imagenet")
    monkeypatch.setenv("CLBENCH_DATA_IMAGENET", str(root / "imagenet"))
    assert dataset_dir(imagenet, "/elsewhere") == root / "imagenet"  # per-dataset wins
    assert len(load_split(imagenet, "val", "/elsewhere")) == 2000
    monkeypatch.delenv("CLBENCH_DATA_IMAGENET")
    for name, expected in [("gts", "/nowhere/gtsrb/GTSRB/Training"),
                           ("imagenet", "/nowhere/imagenet/val"), ("dalle", "/nowhere/dalle/test")]:
        assert main(["data", "check", name, "--data-root", "/nowhere"]) == 2
        err = capsys.readouterr().err
        assert f"expected {expected}" in err and "Expected layout:" in err
        assert "hint:" in err and "CLBENCH_DATA" in err
    assert main(["data", "check", "imagenett"]) == 2
    assert "did you mean: imagenet" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["data", "prepare", "--help"],
                                  ["data", "prepare", "tsi", "--help"]])
def test_data_help_imports_no_training_stack(tmp_path, argv):
    code = ("import sys\nfrom clbench.cli.main import main\n"
            f"try:\n    print('RC', main({argv!r}))\nexcept SystemExit as exit:\n"
            "    print('RC', exit.code)\n"
            "print('HEAVY', [m for m in ('torch', 'avalanche', 'open_clip', 'av') "
            "if m in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
    assert "HEAVY []" in result.stdout and "RC 0" in result.stdout, result.stderr
    assert "--videos DIR" in result.stdout  # the help is the kinds' declarations


def test_prepare_dalle_twice_gives_the_same_bytes(root, tmp_path):
    source = make_dalle(tmp_path / "gen", CAPTIONS, per_caption=1)
    tiny_image(source / "eating" / "extra.png", 1)
    for out in ("a", "b"):
        assert main(["data", "prepare", "dalle", "--from", str(source), "--out",
                     str(tmp_path / out)]) == 0
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_quick_check_catches_truncated_images(tmp_path, fmt):
    from clbench.scenarios.integrity import decodes

    path = tiny_image(tmp_path / f"image.{fmt.lower()}", 3, size=64, fmt=fmt)
    assert decodes(path, thorough=False) and decodes(path)
    path.write_bytes(path.read_bytes()[:-200])
    assert not decodes(path, thorough=False) and not decodes(path)


def test_a_session_emptied_by_skip_corrupt_is_refused_before_the_run(root, tmp_path, capsys):
    """Every training file of a one-class session corrupt: with --skip-corrupt that session
    would have nothing to train on, so the run is refused before anything is stored."""
    data = copy_of(root, "tsi", tmp_path)
    for name in ("dalle", "imagenet"):
        shutil.copytree(root / name, data / name)
    for image in (data / "tsi" / "train" / "walking").iterdir():
        image.write_bytes(b"not an image")
    scenario = tmp_path / "tsi-two.yaml"
    scenario.write_text("name: tsi-two\ntarget: tsi\nprotocol: few-shot\nshots: 2\n"
                        "sessions: {sizes: [1, 1], order: [eating, walking]}\n"
                        "eval_sets: [dalle]\n")
    db = tmp_path / "runs.db"
    code = main(["run", "--strategy", "fft", "--scenario", str(scenario), "--data-root",
                 str(data), "--db", str(db), "--skip-corrupt", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "session 2 ('walking') has no training image" in err and "data check tsi" in err
    assert not db.exists()
