"""The offline proxy world: deterministic data, tokenizer, committed checkpoint, pretraining."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from clbench.models import PROXY_CHECKPOINT as CHECKPOINT_PATH
from clbench.models import ProxyTokenizer
from clbench.models import load_clip as load_proxy_clip
from clbench.scenarios.proxy import world
from clbench.scenarios.proxy.data import PROXY_TEMPLATES, make_split
from clbench.scenarios.proxy.pretrain import pretrain, zero_shot_accuracy

SPLITS = [("proxy", "train"), ("proxy", "test"), ("proxy-clean", "test"), ("proxy-generic", "test")]


@pytest.mark.parametrize(("dataset", "split"), SPLITS)
def test_split_shapes_labels_and_ids(dataset: str, split: str) -> None:
    s = make_split(dataset, split)
    assert s.images.dtype == torch.float32 and s.images.shape[1:] == (3, 32, 32)
    assert float(s.images.min()) >= 0.0 and float(s.images.max()) <= 1.0
    assert s.targets.dtype == torch.int64 and len(s.targets) == len(s.images)
    assert set(s.targets.tolist()) == set(range(len(s.class_names)))
    assert len(set(s.sample_ids)) == len(s.sample_ids) == len(s)
    assert s.sample_ids[0] == f"{dataset}/{split}/000000"
    assert s.templates == PROXY_TEMPLATES and all("{}" in t for t in s.templates)


def test_class_lists() -> None:
    assert len(world.TARGET_CLASSES) == 20 == len(set(world.TARGET_CLASSES))
    assert len(world.GENERIC_CLASSES) == 40 and not set(world.GENERIC_CLASSES) & set(
        world.TARGET_CLASSES
    )
    # Target and clean control share label order, so label k means the same class in both.
    assert make_split("proxy", "test").class_names == list(world.TARGET_CLASSES)
    assert make_split("proxy-clean", "test").class_names == list(world.TARGET_CLASSES)
    # Sessions of four classes each use four distinct colours and shapes.
    for s in range(5):
        session = [c.split() for c in world.TARGET_CLASSES[4 * s : 4 * s + 4]]
        assert len({c for c, _ in session}) == 4 and len({sh for _, sh in session}) == 4


def test_invalid_split_names_valid_ones() -> None:
    with pytest.raises(ValueError, match="proxy-clean/test"):
        make_split("proxy-clean", "train")
    with pytest.raises(ValueError, match="proxy/train"):
        make_split("nope", "test")


def test_rendering_is_deterministic_and_ignores_global_seed() -> None:
    torch.manual_seed(1)
    a, la = world.render_classes(world.TARGET_CLASSES, 3, world.CAMERA, seed=5)
    torch.manual_seed(2)
    torch.rand(10)
    b, lb = world.render_classes(world.TARGET_CLASSES, 3, world.CAMERA, seed=5)
    assert torch.equal(a, b) and torch.equal(la, lb)
    c, _ = world.render_classes(world.TARGET_CLASSES, 3, world.CAMERA, seed=6)
    assert not torch.equal(a, c)


def test_make_split_is_identical_in_a_fresh_process(tmp_path) -> None:
    code = (
        "import torch, sys; torch.manual_seed(123);"
        "from clbench.scenarios.proxy.data import make_split;"
        "s = make_split('proxy', 'test'); torch.save(s.images, sys.argv[1])"
    )
    path = tmp_path / "images.pt"
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    assert torch.equal(torch.load(path), make_split("proxy", "test").images)


def test_camera_shift_is_systematic_and_clean_differs() -> None:
    clean, _ = world.render_classes(["red star"], 4, world.CLEAN, seed=0)
    cam, _ = world.render_classes(["red star"], 4, world.CAMERA, seed=0)
    # Same scenes, different camera: a large shift, but low contrast keeps the range narrow.
    assert (clean - cam).abs().mean() > 0.1
    assert float(cam.std()) < float(clean.std())


def test_pretraining_batch_and_captions() -> None:
    g = torch.Generator().manual_seed(0)
    images, caps, classes = world.sample_pretraining_batch(16, g)
    assert images.shape == (16, 3, 32, 32) and len(caps) == 16
    for cap, k in zip(caps, classes.tolist()):
        colour, shape = world.ALL_CLASSES[k].split()
        assert colour in cap and shape in cap


def test_tokenizer() -> None:
    tok = ProxyTokenizer()
    ids = tok(["a photo of a red star.", "a zebra on the moon!", ""])
    assert ids.shape == (3, tok.context_length) and ids.dtype == torch.long
    assert int(ids.max()) == tok.eot == tok.vocab_size - 1
    assert (ids.argmax(-1) == torch.tensor([8, 7, 1])).all()  # pooling lands on the end token
    assert (ids[1] == tok.UNK).sum() == 3  # zebra, moon, !
    assert torch.equal(ids, ProxyTokenizer()(["a photo of a red star.", "a zebra on the moon!", ""]))
    long = tok(" ".join(["red"] * 100))
    assert long[0, -1] == tok.eot
    for t in PROXY_TEMPLATES:
        assert tok.UNK not in tok.encode(t.format("blue heart"))


def test_committed_checkpoint_zero_shot() -> None:
    model, tok, sha = load_proxy_clip()
    assert not model.training and len(sha) == 64
    meta = json.loads(CHECKPOINT_PATH.with_suffix(".json").read_text())
    assert meta["sha256"] == sha
    assert zero_shot_accuracy(model, tok, "proxy-clean") >= 0.8
    assert zero_shot_accuracy(model, tok, "proxy") <= 0.4


def test_missing_checkpoint_says_how_to_make_it(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not found") as info:
        load_proxy_clip(tmp_path / "missing.pt")
    assert "clbench proxy pretrain" in info.value.hint  # the command comes as the hint


def test_tiny_pretraining_is_deterministic(tmp_path) -> None:
    metas = [
        pretrain(tmp_path / f"run{i}" / "ckpt.pt", seed=3, steps=2, batch_size=8,
                 evaluate=False, progress=False)
        for i in range(2)
    ]
    a = torch.load(tmp_path / "run0" / "ckpt.pt")
    b = torch.load(tmp_path / "run1" / "ckpt.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(v.dtype == torch.float16 for v in a.values())
    assert metas[0]["sha256"] == metas[1]["sha256"]
    on_disk = json.loads((tmp_path / "run0" / "ckpt.json").read_text())
    assert on_disk["steps"] == 2 and on_disk["seed"] == 3 and on_disk["sha256"] == metas[0]["sha256"]
    model, _, sha = load_proxy_clip(tmp_path / "run0" / "ckpt.pt")
    assert sha == metas[0]["sha256"]
