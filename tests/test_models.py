"""clbench.models: the proxy CLIP as an open_clip model config, its data files, checkpoint errors,
and the proxy pretraining's schedule and command-line options."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import open_clip
import pytest
import torch

from clbench.backbones import PROXY_ARCH
from clbench.cli.main import build_parser, main
from clbench.config.run_config import ModelConfig
from clbench.errors import UserError
from clbench.models import (
    PROXY_CHECKPOINT,
    ProxyTokenizer,
    build_clip,
    build_on_meta,
    load_clip,
    load_model,
    register_model_configs,
)
from clbench.models.configs import CONFIG_DIR, read_vocabulary
from clbench.models.loading import load_weights
from clbench.run import proxy_pretrain
from clbench.scenarios.proxy import world
from clbench.schedules import warmup_cosine


def old_builder() -> open_clip.CLIP:
    """The proxy CLIP as the Python code that built it before it became a model config."""
    tok = ProxyTokenizer()
    vision_cfg = dict(layers=4, width=128, head_width=32, mlp_ratio=4.0, patch_size=8,
                      image_size=32)
    text_cfg = dict(layers=3, width=96, heads=4, mlp_ratio=4.0, pool_type="argmax",
                    context_length=tok.context_length, vocab_size=tok.vocab_size,
                    pad_id=tok.PAD, eos_id=tok.eot)
    return open_clip.CLIP(embed_dim=96, vision_cfg=vision_cfg, text_cfg=text_cfg)


def test_proxy_is_an_open_clip_model_config():
    register_model_configs()
    assert PROXY_ARCH in open_clip.list_models()
    cfg = open_clip.get_model_config(PROXY_ARCH)
    assert {"embed_dim", "vision_cfg", "text_cfg"} <= set(cfg)
    assert type(open_clip.create_model(PROXY_ARCH)) is open_clip.CLIP


def test_config_built_proxy_equals_the_old_builder_bit_for_bit():
    torch.manual_seed(3)
    old_init = old_builder().state_dict()
    torch.manual_seed(3)
    new_init = build_clip(PROXY_ARCH).state_dict()
    assert old_init.keys() == new_init.keys()
    assert all(torch.equal(old_init[k], new_init[k]) for k in old_init)  # same random init

    old = old_builder()
    state = torch.load(PROXY_CHECKPOINT, map_location="cpu", weights_only=True)
    old.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    old.eval()
    new, tok, sha = load_clip()
    assert sha is not None and len(sha) == 64
    images = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    mean, std = torch.tensor([0.47] * 3).view(3, 1, 1), torch.tensor([0.34] * 3).view(3, 1, 1)
    bundle = load_model(ModelConfig(arch="proxy"))
    assert torch.equal(bundle.transform(images), (images - mean) / std)
    tokens = tok(["a photo of a red star.", "blue ring", ""])
    with torch.no_grad():
        assert torch.equal(old.encode_image(bundle.transform(images)),
                           new.encode_image(bundle.transform(images)))
        assert torch.equal(old.encode_text(tokens), new.encode_text(tokens))


def test_image_statistics_come_from_the_config_files():
    clip = build_clip(PROXY_ARCH)
    assert clip.visual.preprocess_cfg["mean"] == [0.47, 0.47, 0.47]
    assert clip.visual.preprocess_cfg["std"] == [0.34, 0.34, 0.34]


def test_vocabulary_file_equals_the_world_vocabulary():
    words = read_vocabulary(PROXY_ARCH)
    assert words == world.vocabulary()
    text_cfg = json.loads((CONFIG_DIR / f"{PROXY_ARCH}.json").read_text())["text_cfg"]
    tok = ProxyTokenizer()
    assert tok.words == words
    assert text_cfg["vocab_size"] == tok.vocab_size and text_cfg["eos_id"] == tok.eot
    assert text_cfg["context_length"] == tok.context_length


def test_meta_build_of_the_proxy_and_an_open_clip_arch():
    for arch in (PROXY_ARCH, "proxy", "ViT-B-16"):
        clip = build_on_meta(arch)
        assert all(p.is_meta for p in clip.parameters())


def _old_lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    """The pretraining's own schedule before it used clbench.schedules."""
    if step < warmup:
        return lr * (step + 1) / warmup
    return 0.5 * lr * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


@pytest.mark.parametrize("steps", [1, 2, 3, 20, 21, 100, 800])
def test_warmup_cosine_reproduces_the_pretraining_schedule(steps):
    lr, warmup = 2e-3, max(1, steps // 20)
    schedule = warmup_cosine(steps, warmup_steps=warmup)
    for step in range(steps):
        old, new = _old_lr_at(step, steps, lr, warmup), lr * schedule(step)
        # the operations are ordered differently: equal up to float64 rounding ...
        assert math.isclose(old, new, rel_tol=1e-12, abs_tol=1e-300)
        # ... and equal as the float32 scalars AdamW applies (rate, step size, decay factor)
        bias_correction = 1 - 0.9 ** (step + 1)
        assert np.float32(old) == np.float32(new)
        assert np.float32(old / bias_correction) == np.float32(new / bias_correction)
        assert np.float32(1 - old * 0.1) == np.float32(1 - new * 0.1)


def test_smoke_schedule_is_exact():
    schedule = warmup_cosine(3, warmup_steps=1)
    assert [2e-3 * schedule(s) for s in range(3)] == [_old_lr_at(s, 3, 2e-3, 1) for s in range(3)]


# ------------------------------------------------------------------ checkpoints that do not load
def _bad_files(tmp_path):
    random_bytes = tmp_path / "random.pt"
    random_bytes.write_bytes(np.random.default_rng(0).bytes(4096))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(PROXY_CHECKPOINT.read_bytes()[:100_000])
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(3, 3)}, foreign)
    return {"random": random_bytes, "truncated": truncated, "foreign": foreign}


def _assert_one_line_advice(err: UserError, path, arch: str) -> None:
    message = str(err)
    assert "\n" not in message and "\n" not in (err.hint or "")
    assert f"{path} is not a loadable checkpoint for {arch}" in message
    assert "weights_only" not in message + (err.hint or "")
    assert err.hint


def test_bad_proxy_checkpoint_is_a_one_line_user_error(tmp_path):
    for kind, path in _bad_files(tmp_path).items():
        with pytest.raises(UserError) as info:
            load_model(ModelConfig(arch=PROXY_ARCH, checkpoint=str(path)))
        _assert_one_line_advice(info.value, path, PROXY_ARCH)
        assert "clbench proxy pretrain" in info.value.hint
        assert ("do not match" in str(info.value)) == (kind == "foreign")


def test_bad_open_clip_checkpoint_is_a_one_line_user_error(tmp_path):
    with torch.device("meta"):  # loading fails before any weight is copied
        clip = build_clip("ViT-B-32", device="meta")
    files = _bad_files(tmp_path)
    files["proxy weights"] = PROXY_CHECKPOINT
    for kind, path in files.items():
        with pytest.raises(UserError) as info:
            load_weights(clip, path, "ViT-B-32")
        _assert_one_line_advice(info.value, path, "ViT-B-32")
        assert "--pretrained" in info.value.hint
        assert ("do not match" in str(info.value)) == (kind in ("foreign", "proxy weights"))


def test_cli_prints_one_line_for_random_bytes(tmp_path, capsys):
    from clbench.cli.main import main

    path = _bad_files(tmp_path)["random"]
    code = main(["run", "--strategy", "zeroshot", "--scenario", "proxy-20shot",
                 "--checkpoint", str(path), "--db", str(tmp_path / "runs.db")])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and "weights_only" not in err
    assert "is not a loadable checkpoint for proxy-vit-tiny" in err


def test_missing_checkpoint_is_a_user_error_and_file_not_found(tmp_path):
    with pytest.raises(UserError, match="checkpoint not found") as info:
        load_model(ModelConfig(checkpoint=str(tmp_path / "missing.pt")))
    assert "clbench proxy pretrain" in info.value.hint  # how to make one
    assert isinstance(info.value, FileNotFoundError)


# ------------------------------------------------------------------ `clbench proxy pretrain`
def _pretrain_args(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(["proxy", "pretrain", *argv])


def test_pretrain_arguments_parse():
    args = _pretrain_args(["--out", "/tmp/x/proxy.pt", "--seed", "3", "--steps", "5",
                           "--batch-size", "8", "--no-progress"])
    assert str(args.out) == "/tmp/x/proxy.pt" and args.seed == 3 and args.steps == 5
    assert args.batch_size == 8 and args.no_progress and args.device == "cpu"
    assert _pretrain_args([]).out is None  # run() writes the committed checkpoint then
    defaults = _pretrain_args([])
    made = json.loads(PROXY_CHECKPOINT.with_suffix(".json").read_text())
    # the defaults rebuild the committed checkpoint
    assert (defaults.steps, defaults.lr, defaults.batch_size, defaults.seed) == (
        made["steps"], made["lr"], made["batch_size"], made["seed"])


def test_pretrain_out_errors_are_one_line_user_errors(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for out, words in [(tmp_path, "is a directory"), (blocker / "proxy.pt", "not writable")]:
        args = _pretrain_args(["--out", str(out), "--steps", "1", "--no-progress"])
        with pytest.raises(UserError, match=words) as info:
            proxy_pretrain.run(args)
        assert "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # nothing written


def test_pretrain_command_prints_the_error(tmp_path, capsys):
    assert main(["proxy", "pretrain", "--out", str(tmp_path), "--no-progress"]) == 2
    assert capsys.readouterr().err.startswith(f"error: --out {tmp_path} is a directory")
