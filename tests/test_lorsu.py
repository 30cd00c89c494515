"""LoRSU: eq. 5 head choice on known gradients, fc1 masks, a real session's invariants, merging,
presets, config errors, a timm trunk and the ViT-L/14 trainable count (paper table 9)."""

from __future__ import annotations

from types import SimpleNamespace

import open_clip
import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from open_clip.factory import get_model_config
from tiny_models import (
    DH,
    HEADS,
    WIDTH,
    TinyImages,
    classifier,
    snapshot,
    tiny_clip,
    tiny_timm_clip,
    train_stream,
    trainer,
)
from torch import nn
from torch.nn.utils import parametrize

import clbench.strategies.lorsu.plugin as lorsu_module
from clbench.errors import ConfigError
from clbench.strategies import registry
from clbench.strategies.blocks import blocks, head_rows
from clbench.strategies.lora import LoRAConfig, attach_adapters
from clbench.strategies.lora_layers import adapters_of
from clbench.strategies.lorsu import LoRSUConfig, count_trainable, head_scores, select_heads
from clbench.strategies.masking import mask_size
from clbench.strategies.spu import SPUConfig
from clbench.strategies.spu import count_trainable as spu_count


def plugin(name: str = "lorsu", **params):
    return registry.create(name, params)


# ---------------------------------------------------------------- eq. 5 on known gradients


def known_gradients(clip: nn.Module, qkv_heads=(0, 1), wo_heads=(2, 3)) -> dict[int, torch.Tensor]:
    """Random gradients where q/k/v favour `qkv_heads` and Wo's columns favour `wo_heads`."""
    g = torch.Generator().manual_seed(3)
    grads = {}
    for view in blocks(clip):
        gin = torch.rand(3 * WIDTH, WIDTH, generator=g) * 0.1
        gout = torch.rand(WIDTH, WIDTH, generator=g) * 0.1
        for part in ("q", "k", "v"):
            for h in qkv_heads:
                gin[head_rows(view, part, h)] *= 3  # s_qkv x9 for these heads
        for h in wo_heads:
            gout[:, h * DH:(h + 1) * DH] *= 10  # Wo: x100, enough to dominate with Wo
        grads[id(view.slots["q"][0].tensor)] = gin
        grads[id(view.out_proj.weight)] = gout
        grads[id(view.fc1.weight)] = torch.randn(view.fc1.weight.shape, generator=g)
    return grads


def test_head_scores_are_eq5_with_wo_columns():
    clip = tiny_clip()
    view = blocks(clip)[0]
    grads = known_gradients(clip)
    gin, gout = grads[id(view.qkv_weight)].double(), grads[id(view.out_proj.weight)].double()
    qkv = gin.reshape(3, HEADS, DH, WIDTH).square().sum(dim=(0, 2, 3))
    wo = gout.reshape(WIDTH, HEADS, DH).square().sum(dim=(0, 2))  # columns h*Dh:(h+1)*Dh
    torch.testing.assert_close(head_scores(view, grads, "qkvo"), qkv + wo)
    torch.testing.assert_close(head_scores(view, grads, "qkv"), qkv)
    scores = torch.tensor([0.3, 5.0, 1.0, 2.0])
    assert select_heads(scores, 2) == sorted(torch.argsort(scores, descending=True)[:2].tolist())


@pytest.mark.parametrize("name,expected", [("lorsu", [2, 3]), ("lorsu-per-head", [2, 3]),
                                           ("lorsu-official", [0, 1])])
def test_configure_picks_top_k_heads_and_fc1_mask_from_the_gradients(monkeypatch, name,
                                                                     expected):
    clip = tiny_clip()
    grads = known_gradients(clip)
    requested = []

    def fake(strategy, tensors, **kwargs):
        requested.extend(id(t) for t in tensors)
        return [grads[id(t)] for t in tensors]

    views = blocks(clip)
    for view in views:  # the argsort of eq. 5, computed here by hand
        in_grad = grads[id(view.slots["q"][0].tensor)]
        s = in_grad.reshape(3, HEADS, DH, WIDTH).square().sum(dim=(0, 2, 3))
        if name != "lorsu-official":
            s = s + grads[id(view.out_proj.weight)].reshape(WIDTH, HEADS, DH).square().sum((0, 2))
        assert sorted(torch.argsort(s, descending=True)[:2].tolist()) == expected
    monkeypatch.setattr(lorsu_module, "accumulate_gradients", fake)
    p = plugin(name, rank=4, alpha=4.0)
    p.configure(SimpleNamespace(clip=clip), None)
    wo_ids = {id(v.out_proj.weight) for v in views}
    # the default reads Wo's gradient for eq. 5; the official score does not
    assert bool(wo_ids & set(requested)) == (name != "lorsu-official")
    assert p.session_facts()["chosen_heads"] == [expected, expected]
    # fc1: exactly S = floor(sparsity * numel) entries, the largest G^2 of the whole matrix
    sparsity = p.config.sparsity
    for view, (param, frozen, _) in zip(views, p.masks.entries):
        assert param is view.fc1.weight
        trainable = ~frozen
        g2 = grads[id(param)].square()
        assert trainable.sum() == mask_size(sparsity, param.numel()) == int(sparsity * param.numel())
        assert g2[trainable].min() >= g2[~trainable].max()
    # exactly top-k heads get factors: 3 pairs per chosen head, or one masked fused pair
    adapters = adapters_of(clip)
    if name == "lorsu-per-head":
        assert len(adapters) == 2 * 2 * 3
        assert {a.rows.start // DH for a in adapters} == {h + o * HEADS for h in expected
                                                          for o in range(3)}
        assert all(a.lora_A.shape == (4, WIDTH) and a.lora_B.shape == (DH, 4) for a in adapters)
    else:  # two in-projections + the projection
        assert len(adapters) == 3
        row_mask = adapters[0].row_mask.squeeze(1).bool()
        assert row_mask.sum() == 3 * 2 * DH
        assert all(row_mask[head_rows(views[0], part, h)].all() for part in "qkv"
                   for h in expected)
    assert p.session_facts()["trainable_params"] == count_trainable(clip, p.config)["total"]


# ---------------------------------------------------------------- a real session


class Probe(SupervisedPlugin):
    """Records the state before each session and the adapted model just before LoRSU merges."""

    def __init__(self, target, x):
        super().__init__()
        self.target, self.x = target, x
        self.sessions = []

    def before_training_exp(self, strategy, **kwargs):
        self.sessions.append({"before": snapshot(strategy.model)})

    def after_training_exp(self, strategy, **kwargs):
        names = {id(p): n for n, p in strategy.model.named_parameters()}
        s = self.sessions[-1]
        s["frozen"] = {names[id(p)]: frozen.clone() for p, frozen, _ in self.target.masks.entries}
        s["parametrized"] = any(parametrize.is_parametrized(m) for m in strategy.model.modules())
        s["adapters"] = len(self.target.adapters)
        s["facts"] = self.target.session_facts()
        with torch.no_grad():
            s["adapted"] = strategy.model.clip.encode_image(self.x)


def run_sessions(model, p, sessions=2, optimizer="adam", weight_decay=0.0, plain=False):
    """Train `sessions` sessions through clbench's training loop, or with `plain=True` through
    Avalanche's own `Naive` and an AdamW the user built over every parameter."""
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(9))
    probe = Probe(p, x)
    if plain:
        loop = Naive(model=model, optimizer=torch.optim.AdamW(
            model.parameters(), lr=1e-2, weight_decay=weight_decay),
            criterion=nn.CrossEntropyLoss(), train_mb_size=2, train_epochs=2,
            plugins=[probe, p], evaluator=EvaluationPlugin(loggers=[]))
    else:
        loop = trainer(model, [probe, p], epochs=2, batch_size=2, lr=1e-2, optimizer=optimizer,
                       weight_decay=weight_decay)
    for exp in train_stream(*(TinyImages(6, s) for s in range(sessions))):
        loop.train(exp, eval_streams=[])
        s = probe.sessions[-1]
        s["after"] = snapshot(model)
        with torch.no_grad():
            s["merged"] = model.clip.encode_image(x)
    return probe.sessions


def check_session(s, views_prefix, heads_of, qkv_key, out_key, fc1_key, num_blocks,
                  official=False, proj=None):
    """`official`: biases train too; `proj` (default: as official): the projection LoRA."""
    proj = official if proj is None else proj
    before, after = s["before"], s["after"]
    assert s["parametrized"] and s["adapters"] > 0
    assert not any(".parametrizations." in k for k in after)  # merged: a plain model
    torch.testing.assert_close(s["merged"], s["adapted"], rtol=1e-5, atol=1e-5)
    allowed = set()
    for b in range(num_blocks):
        pre = f"{views_prefix}.{b}."
        allowed |= {pre + qkv_key, pre + fc1_key}
        # fc1: entries outside the mask bit-identical, masked entries trained
        frozen = s["frozen"][pre + fc1_key]
        w0, w1 = before[pre + fc1_key], after[pre + fc1_key]
        assert torch.equal(w1[frozen], w0[frozen])
        assert (w1[~frozen] != w0[~frozen]).float().mean() > 0.5
        # q/k/v: chosen heads' rows changed, every other row bit-identical
        q0, q1 = before[pre + qkv_key], after[pre + qkv_key]
        dim = q0.shape[1]
        dh = q0.shape[0] // 3 // len(heads_of)
        changed_rows = (q1 != q0).any(dim=1)
        for part in range(3):
            for h in range(len(heads_of)):
                rows = slice(part * dim + h * dh, part * dim + (h + 1) * dh)
                if h in s["facts"]["chosen_heads"][b]:
                    assert changed_rows[rows].all(), (b, part, h)
                else:
                    assert not changed_rows[rows].any(), (b, part, h)
        if official:
            allowed |= {pre + qkv_key.replace("weight", "bias"), pre + fc1_key.replace("weight",
                                                                                     "bias")}
    moved = [k for k in before if k not in allowed and not torch.equal(before[k], after[k])]
    if proj:
        assert set(moved) <= {"clip.visual.proj", "clip.visual.head.proj.weight"} and moved
    else:
        assert moved == [], f"frozen tensors changed: {moved}"


@pytest.mark.parametrize("name,plain", [
    ("lorsu", False), pytest.param("lorsu-official", False, marks=pytest.mark.slow),
    pytest.param("lorsu", True, marks=pytest.mark.slow),
    pytest.param("lorsu-per-head", False, marks=pytest.mark.slow)])
def test_sessions_through_the_training_loop_keep_the_invariants(name, plain):
    """Also in a plain Avalanche loop: Naive(model, AdamW(all params), plugins=[LoRSUPlugin()])."""
    model = classifier(tiny_clip())
    p = plugin(name, rank=4, alpha=4.0, sparsity=0.1)
    sessions = run_sessions(model, p, sessions=2, plain=plain,
                            optimizer="adamw" if name == "lorsu" else "adam", weight_decay=0.05)
    for s in sessions:
        check_session(s, "clip.visual.transformer.resblocks", range(HEADS),
                      "attn.in_proj_weight", "attn.out_proj.weight", "mlp.c_fc.weight", 2,
                      official=name == "lorsu-official", proj=p.config.proj_lora)
        assert all(len(h) == 2 for h in s["facts"]["chosen_heads"])
        assert s["facts"]["fc1_mask_density"] == pytest.approx(
            int(0.1 * 4 * WIDTH * WIDTH) / (4 * WIDTH * WIDTH))
    assert p.adapters == [] and p.masks.entries == []
    # session 2 started from the merged session-1 model
    assert all(torch.equal(sessions[0]["after"][k], sessions[1]["before"][k])
               for k in sessions[0]["after"])


def test_timm_trunk_session():
    model = classifier(tiny_timm_clip())
    p = plugin("lorsu", rank=8, top_k_heads=1)
    s = run_sessions(model, p, sessions=1)[0]
    check_session(s, "clip.visual.trunk.blocks", range(3), "attn.qkv.weight",
                  "attn.proj.weight", "mlp.fc1.weight", 2, proj=True)
    assert all(len(h) == 1 for h in s["facts"]["chosen_heads"])


# ---------------------------------------------------------------- configuration


def test_config_errors_name_the_key_and_range():
    clip = tiny_clip()
    with pytest.raises(ConfigError, match=r"strategy.top_k_heads: 5 is outside the allowed "
                                          r"range \[1, 4\]"):
        plugin(top_k_heads=5).configure(SimpleNamespace(clip=clip), None)
    with pytest.raises(ConfigError, match=r"strategy.rank: 17 is outside the allowed range "
                                          r"\[1, 16\]"):
        plugin("lorsu-per-head", rank=17).configure(SimpleNamespace(clip=clip), None)
    # the default's fused in-projection is 3D x D; the projection LoRA (64 x 32) limits it
    with pytest.raises(ConfigError, match=r"strategy.rank: 33 .*\[1, 32\].*projection"):
        plugin(rank=33).configure(SimpleNamespace(clip=clip), None)
    # the official preset's rank 64 exceeds this tiny projection (64 x 32)
    with pytest.raises(ConfigError, match=r"strategy.rank: 64 .*\[1, 32\]"):
        plugin("lorsu-official").configure(SimpleNamespace(clip=clip), None)
    for bad in ({"sparsity": 0}, {"sparsity": 1.5}, {"rank": 0}, {"top_k_heads": 0},
                {"head_score": "qk"}, {"lora_layout": "fused"}):
        with pytest.raises(ConfigError, match="strategy." + next(iter(bad))):
            plugin(**bad)
    assert not any(parametrize.is_parametrized(m) for m in clip.modules())
    official = plugin("lorsu-official").config
    assert (official.rank, official.scale_alpha, official.sparsity, official.top_k_heads,
            official.head_score, official.lora_layout, official.train_biases,
            official.proj_lora) == (64, 64.0, 0.1, 2, "qkv", "masked_fused", True, True)
    default = plugin().config
    assert (default.rank, default.scale_alpha, default.sparsity, default.top_k_heads,
            default.head_score, default.lora_layout, default.proj_lora, default.train_biases,
            default.towers) == (32, 32.0, 0.05, 2, "qkvo", "masked_fused", True, False, "vision")
    per_head = plugin("lorsu-per-head").config  # eqs. 6-8 read per head: the old default
    assert (per_head.lora_layout, per_head.proj_lora, per_head.head_score, per_head.rank) == (
        "per_head", False, "qkvo", 32)


# ---------------------------------------------------------------- ViT-L/14: paper table 9


def test_vit_l14_trainable_counts_vs_table_9():
    with torch.device("meta"):  # architecture only: no memory, no weights
        clip = open_clip.CLIP(**get_model_config("ViT-L-14"))
        other = open_clip.CLIP(**get_model_config("ViT-L-14"))
        third = open_clip.CLIP(**get_model_config("ViT-L-14"))
    vision = sum(p.numel() for p in clip.visual.parameters())
    assert vision == 303_966_208
    # preset lora-qkv-split: separate q, k, v factors, no projection
    lora = sum(p.numel() for a in attach_adapters(clip, LoRAConfig(
        rank=32, targets=["q", "k", "v", "out_proj", "fc1", "fc2"], proj_lora=False))
               for p in a.parameters())
    lora_fused = sum(p.numel() for a in attach_adapters(
        other, LoRAConfig(rank=32, targets=["qkv", "out_proj", "fc1", "fc2"], proj_lora=False))
        for p in a.parameters())
    lora_default = sum(p.numel() for a in attach_adapters(third, LoRAConfig())
                       for p in a.parameters())
    # preset lorsu-per-head: per-head factors, rank 32 (eqs. 6-8 read per head)
    lorsu = count_trainable(clip, LoRSUConfig(lora_layout="per_head", proj_lora=False))
    # the default, the paper's count: one masked fused factor pair at rank 32, + proj LoRA
    paper = count_trainable(clip, LoRSUConfig())
    spu = spu_count(clip, SPUConfig())
    assert lorsu["fc1"] == 24 * int(0.05 * 4096 * 1024) == 5_033_160
    assert lorsu["adapters"] == 24 * 2 * 3 * 32 * (64 + 1024) == 5_013_504
    assert lorsu["total"] < lora == 14_155_776  # LoRA with separate q, k, v factors
    assert lora_fused == 12_582_912  # table 9: 12.6M (4.15%); 4.14% of the vision tower here
    # the default adds the projection factor: 12.6M (4.16% here, 4.15% of ViT-L-14-336's 304.3M)
    assert lora_default == 12_582_912 + 32 * (1024 + 768) == 12_640_256
    assert round(100 * lora / vision, 2) == 4.66  # lora-qkv-split
    assert spu["total"] == 24 * int(0.1 * 4096 * 1024) == 10_066_320  # table 9: 10.1M (3.31%)
    assert round(100 * spu["total"] / vision, 2) == 3.31
    assert paper["total"] == 5_033_160 + 24 * 32 * 4096 + 32 * (1024 + 768) == 8_236_232
    assert round(100 * paper["total"] / vision, 2) == 2.71  # table 9: 8.2M (2.71%)
    assert round(100 * lorsu["total"] / vision, 2) == 3.31  # per-head factors: as many as SPU
