"""TSI preparation from Smarthome-style clips (LoRSU paper, appendix D and table 6): the middle
frame after discretising at 2 fps, the caption map, the cross-subject split, reproducibility."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
from paper_data import expected_index, make_clip, make_videos, read_index, tree_bytes
from PIL import Image

from clbench.cli.main import main
from clbench.scenarios import tsi
from clbench.scenarios.datasets import load_split
from clbench.scenarios.manifests import load_dataset_manifest


@pytest.mark.parametrize("fps, frames, index", [
    (10, 23, 10),  # D = 2.3 s: samples 0, .5, 1, 1.5, 2 -> t = 1.0 (the naive middle is 11)
    (7, 20, 10),   # D = 20/7 s: 6 samples -> t = 1.5; frame 10 is at 1.43 s, frame 11 at 1.57 s
    (2, 5, 2),     # the clip is already at 2 fps: its middle frame
    (30, 30, 15),  # D = 1 s: samples 0 and .5 -> the later one
    (25, 1, 0),    # a single frame
    (20, 121, 60),  # D = 6.05 s: 13 samples -> t = 3.0
])
def test_middle_frame_rule(fps, frames, index):
    times = [Fraction(i, fps) for i in range(frames)]
    assert tsi.middle_frame(times, Fraction(1, fps)) == index == expected_index(frames, fps)


def test_middle_frame_ignores_a_start_offset():
    times = [Fraction(7, 3) + Fraction(i, 10) for i in range(23)]
    assert tsi.middle_frame(times, Fraction(1, 10)) == 10


@pytest.mark.parametrize("fps, frames", [(10, 23), (7, 20), (15, 44), (20, 121)])
def test_extracted_frame_is_the_middle_one(tmp_path, fps, frames):
    clip = make_clip(tmp_path / "Walk_p03_r00_v00_c01.mp4", frames, fps)
    image, index, count = tsi.extract_middle_frame(clip)
    assert count == frames
    assert index == expected_index(frames, fps)
    assert read_index(image) == index  # the pixels are those of that frame


def test_clip_names_and_subjects():
    clip = tsi.parse_clip_name(Path("Cook.Cleandishes_p02_r00_v02_c03.mp4"))
    assert (clip.action, clip.subject) == ("Cook.Cleandishes", "p02")
    assert tsi.parse_clip_name(Path("holiday.mp4")) is None
    assert tsi.split_of("p03") == "train" and tsi.split_of("p02") == "test"
    assert tsi.split_of("p99") is None
    assert len(tsi.TRAIN_SUBJECTS) == 11 and set(tsi.TRAIN_SUBJECTS) < set(tsi.ALL_SUBJECTS)
    captions = set(tsi.ACTION_CAPTIONS.values())
    assert len(tsi.ACTION_CAPTIONS) == 27 and len(captions) == 22
    assert captions == set(load_dataset_manifest("tsi").class_names)
    assert not set(tsi.DROPPED_ACTIONS) & set(tsi.ACTION_CAPTIONS)


@pytest.fixture(scope="module")
def prepared_tsi(tmp_path_factory):
    root = tmp_path_factory.mktemp("tsi")
    clips = make_videos(root / "videos")
    code = main(["data", "prepare", "tsi", "--videos", str(root / "videos"), "--out",
                 str(root / "data" / "tsi")])
    assert code == 0
    return root, clips


def test_prepare_maps_captions_splits_subjects_and_middle_frames(prepared_tsi):
    root, clips = prepared_tsi
    out = root / "data" / "tsi"
    body = json.loads((out / "manifest.json").read_text())
    files = {Path(f["path"]).stem: f for f in body["files"]}
    assert set(files) == set(clips)  # dropped, unknown and unparsed clips left out
    for stem, f in files.items():
        action, subject = stem.split("_")[:2]
        assert f["label"] == tsi.ACTION_CAPTIONS[action] and f["group"] == action
        assert f["split"] == ("train" if subject in tsi.TRAIN_SUBJECTS else "test")
        assert f["path"] == f"{f['split']}/{f['label']}/{stem}.jpg"
        assert f["frame"] == expected_index(*clips[stem])
        with Image.open(out / f["path"]) as image:
            assert read_index(image) == f["frame"]
    assert body["totals"] == {"test": 28, "train": 28}
    assert body["counts"]["train"]["holding a bottle"] == 3  # 2 actions, 2 train subjects
    assert body["counts"]["test"]["walking"] == 3  # Enter, Leave, Walk
    assert body["info"]["dropped_actions"] == {"Getup": 1, "Takepills": 1}
    skipped = body["info"]["skipped"]
    assert skipped["unknown_actions"] == ["Dance_p03_r00_v00_c01.mp4"]
    assert skipped["unknown_subjects"] == ["Walk_p99_r00_v00_c01.mp4"]
    assert skipped["unparsed_names"] == ["holiday.mp4"]


def test_prepare_is_byte_for_byte_reproducible(prepared_tsi, tmp_path):
    root, _ = prepared_tsi
    assert main(["data", "prepare", "tsi", "--videos", str(root / "videos"), "--out",
                 str(tmp_path / "again"), "--workers", "2"]) == 0
    first, second = tree_bytes(root / "data" / "tsi"), tree_bytes(tmp_path / "again")
    assert list(first) == list(second)
    assert first == second
    assert str(tmp_path) not in second["manifest.json"].decode()  # no absolute paths


def test_prepared_tsi_loads_with_actions_as_groups(prepared_tsi):
    root, _ = prepared_tsi
    train = load_split(load_dataset_manifest("tsi"), "train", str(root / "data"))
    assert len(train) == 28 and train.prepared_sha256
    assert train.groups is not None and set(train.groups) == set(tsi.ACTION_CAPTIONS)
    names = train.class_names
    for label, group in zip(train.targets.tolist(), train.groups):
        assert names[label] == tsi.ACTION_CAPTIONS[group]


def test_prepare_without_clips_says_what_it_needs(tmp_path, capsys):
    assert main(["data", "prepare", "tsi", "--videos", str(tmp_path)]) == 2
    assert "no video clips" in capsys.readouterr().err
    assert main(["data", "prepare", "tsi"]) == 2
    assert "--videos" in capsys.readouterr().err
