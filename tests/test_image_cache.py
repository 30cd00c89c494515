"""Eval images are decoded and preprocessed once into a uint8 memory-mapped cache file, read by
later sessions and runs with bit-identical model input, checked block by block (a corrupt block
is decoded again and repaired), and only for data whose file index vouches for its content."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from paper_data import make_dalle
from PIL import Image

from clbench.cli.main import main
from clbench.scenarios.manifests import load_dataset_manifest
from clbench.store import Store
from clbench.training.image_cache import BLOCK, ImageCache, _header_room

CAPTIONS = list(load_dataset_manifest("tsi").class_names)
PER_CAPTION = 12  # 22 captions x 12 = 264 images: two blocks


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("images")
    make_dalle(base / "generated", CAPTIONS, per_caption=PER_CAPTION)
    assert main(["data", "prepare", "dalle", "--from", str(base / "generated"), "--data-root",
                 str(base / "data")]) == 0
    return base / "data"


@pytest.fixture
def scenario(tiny_scenario: Path) -> Path:
    path = tiny_scenario.with_name("proxy-dalle.yaml")
    path.write_text(tiny_scenario.read_text().replace("name: proxy-tiny", "name: proxy-dalle")
                    .replace("eval_sets: [proxy-clean]", "eval_sets: [dalle]"))
    return path


def run(scenario: Path, data_root: Path, db: Path, strategy: str = "lora") -> dict:
    assert main(["run", "--strategy", strategy, "--scenario", str(scenario), "--data-root",
                 str(data_root), "--db", str(db), "--quiet", "--no-progress"]) == 0
    with Store(f"sqlite:///{db}", create=False) as store:
        latest = store.list_runs()[0]["id"]
        stored = store.get_run(latest)
        stored["predictions"] = store.predictions_of(latest)
    return stored


def cache_file(tmp_path: Path) -> Path:
    (entry,) = (tmp_path / "clbench-cache" / "images").glob("*.u8")
    return entry


def test_images_are_preprocessed_once_and_give_the_same_rows(scenario, data_root, tmp_path,
                                                             monkeypatch):
    db = tmp_path / "r.db"
    built = run(scenario, data_root, db)
    assert built["summary"]["reused"]["preprocessed_images"] == {"dalle": "built"}
    entry = cache_file(tmp_path)
    for zero_shot in (tmp_path / "clbench-cache" / "zero-shot").glob("*"):
        zero_shot.unlink()  # so that the next run reads every image, session 0 included
    read = run(scenario, data_root, db)
    assert read["summary"]["reused"]["preprocessed_images"] == {"dalle": "read"}
    monkeypatch.setenv("CLBENCH_CACHE_DIR", "off")
    decoded = run(scenario, data_root, db)
    assert "reused" not in decoded["summary"]
    assert built["evaluations"] == read["evaluations"] == decoded["evaluations"]
    assert built["predictions"] == read["predictions"] == decoded["predictions"]
    assert entry.exists()


@pytest.mark.slow
def test_a_corrupt_block_is_detected_decoded_again_and_repaired(scenario, data_root, tmp_path,
                                                                capsys):
    db = tmp_path / "r.db"
    first = run(scenario, data_root, db)
    entry = cache_file(tmp_path)
    data = bytearray(entry.read_bytes())
    data[_header_room(len(CAPTIONS) * PER_CAPTION) + BLOCK * 3 * 32 * 32 + 5] ^= 0xFF
    entry.write_bytes(bytes(data))
    for zero_shot in (tmp_path / "clbench-cache" / "zero-shot").glob("*"):
        zero_shot.unlink()
    capsys.readouterr()
    second = run(scenario, data_root, db)
    err = capsys.readouterr().err
    assert f"the cached images {entry} are corrupt (images 256–263): decoded again" in err
    assert second["evaluations"] == first["evaluations"]
    # repaired in place: every block matches its checksum again
    with open(entry, "rb") as handle:
        _, length = struct.unpack("<8sQ", handle.read(16))
        header = json.loads(handle.read(length))
    pixels = entry.read_bytes()[_header_room(header["count"]):]
    size = int(np.prod(header["shape"])) * BLOCK
    assert [hashlib.sha256(pixels[i:i + size]).hexdigest()
            for i in range(0, len(pixels), size)] == header["blocks"]


def test_only_data_with_a_file_index_is_cached(data_root, tmp_path):
    from clbench.models.loading import make_transform
    from clbench.scenarios.datasets import load_split

    data = load_split(load_dataset_manifest("dalle"), "test", str(data_root))
    transform = make_transform(32, (0.5,) * 3, (0.5,) * 3)
    cache = ImageCache(tmp_path / "cache")
    assert cache.key(data, "h", transform) is not None
    data.prepared_sha256 = None  # a folder without `clbench data prepare`'s index
    assert cache.key(data, "h", transform) is None
    assert ImageCache(None).key(data, "h", transform) is None  # caching switched off


def test_the_cached_stages_compose_to_the_models_own_preprocess():
    """`finish(pil_geometry(image))` is open_clip's preprocess, bit for bit, so that a cached
    image is the input the uncached path gives."""
    from open_clip.transform import PreprocessCfg, image_transform_v2

    from clbench.models.loading import make_transform

    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    rng = np.random.default_rng(0)
    for cfg in (PreprocessCfg(size=224), PreprocessCfg(size=64, resize_mode="squash")):
        preprocess = image_transform_v2(cfg, is_train=False)
        transform = make_transform(cfg.size[0] if isinstance(cfg.size, tuple) else cfg.size,
                                   mean, std, preprocess)
        for shape in [(300, 400, 3), (97, 500, 3), (50, 60)]:
            image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
            pixels = transform.pil_geometry(image)
            assert pixels.dtype == torch.uint8
            assert torch.equal(transform.finish(pixels), preprocess(image))
            assert torch.equal(transform(image), preprocess(image))
