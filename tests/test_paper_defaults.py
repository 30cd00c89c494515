"""Defaults reproduce the papers' counts and equations; other readings are named presets.

Counts are of models built on the meta device (`clbench params`), against the LoRSU paper's
Table 9 ("Imperfect Vision Encoders", appendix): within 0.01 percentage point of the printed
percentage, its printed millions to one decimal, and the exact count of each layout's formula.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from tiny_models import tiny_clip

from clbench.cli.params import PAPER_TABLE_9, trainable_table
from clbench.models.meta import build_on_meta
from clbench.strategies import registry
from clbench.strategies.lora import GatedLoRAConfig, attach_adapters

NAMES = ["ln", "spu", "lora", "lorsu", "lora-qkv-split", "lorsu-per-head", "dora",
         "gated-lora", "gated-lora-taps"]

# exact counts: LoRA = layers x r x (4D + 2D + 2(D + M)) + r x (D + E) (fused qkv, Wo, fc1, fc2,
# image projection); LoRSU = layers x (floor(0.05 D M) + r x 4D) + r x (D + E)
EXACT = {
    "ViT-L-14": {"lora": 24 * 32 * (4096 + 2048 + 2 * 5120) + 32 * (1024 + 768),
                 "lorsu": 24 * (int(0.05 * 4096 * 1024) + 32 * 4096) + 32 * (1024 + 768)},
    "EVA01-g-14": {"lora": 40 * 32 * (5632 + 2816 + 2 * 7552) + 32 * (1408 + 1024),
                   "lorsu": 40 * (int(0.05 * 6144 * 1408) + 32 * 5632) + 32 * (1408 + 1024)},
}


@pytest.fixture(scope="module",
                params=["ViT-L-14", pytest.param("EVA01-g-14", marks=pytest.mark.slow)])
def table(request):
    return request.param, trainable_table(request.param, NAMES)


def test_defaults_match_table_9(table):
    arch, rows = table
    for name in ("ln", "spu", "lora", "lorsu"):
        paper_m, paper_percent = PAPER_TABLE_9[arch][name]
        row = rows[name]
        assert (row["paper_trainable_m"], row["paper_percent"]) == (paper_m, paper_percent)
        assert abs(row["percent"] - paper_percent) <= 0.01 + 1e-9, (name, row)
        assert round(row["trainable"] / 1e6, 1) == paper_m, (name, row)
    assert rows["lora"]["trainable"] == EXACT[arch]["lora"]
    assert rows["lorsu"]["trainable"] == EXACT[arch]["lorsu"]


def test_presets_are_the_other_readings_and_have_no_paper_number(table):
    arch, rows = table
    # separate q, k, v factors and no projection: 4.66% of ViT-L-14, 3.33% of EVA01-g-14
    split, per_head = rows["lora-qkv-split"], rows["lorsu-per-head"]
    assert round(split["percent"], 2) == {"ViT-L-14": 4.66, "EVA01-g-14": 3.33}[arch]
    assert round(per_head["percent"], 2) == {"ViT-L-14": 3.31, "EVA01-g-14": 2.84}[arch]
    for row, paper in ((split, "lora"), (per_head, "lorsu")):
        assert row["paper_percent"] is None
        assert row["percent"] - PAPER_TABLE_9[arch][paper][1] > 0.3  # not Table 9's count
    # the gated default adapts the lora-qkv-split targets; the TAPS preset counts the same
    layers = {"ViT-L-14": 24, "EVA01-g-14": 40}[arch]
    assert rows["gated-lora"]["trainable"] - rows["lora-qkv-split"]["trainable"] == layers * 6
    assert rows["gated-lora-taps"]["trainable"] == rows["gated-lora"]["trainable"]
    assert rows["dora"]["trainable"] > rows["lora"]["trainable"]  # plus magnitude vectors


def test_vit_l14_336_is_the_papers_304_3_m_model():
    rows = trainable_table("ViT-L-14-336", ["lora", "lorsu"])
    assert round(rows["lora"]["total"] / 1e6, 1) == 304.3
    assert round(rows["lora"]["percent"], 2) == 4.15  # Table 9 exactly
    assert round(rows["lorsu"]["percent"], 2) == 2.71


def test_preset_overrides_are_what_their_names_say():
    presets = {name: registry.create(name).config for name in
               ("lora-qkv-split", "dora-qkv-split", "lorsu-per-head", "gated-lora-taps",
                "gated-dora-taps", "llu-literal")}
    for name in ("lora-qkv-split", "dora-qkv-split"):
        assert presets[name].targets == ["q", "k", "v", "out_proj", "fc1", "fc2"]
        assert presets[name].proj_lora is False
    assert registry.create("lora").config.targets == ["qkv", "out_proj", "fc1", "fc2"]
    assert registry.create("gated-lora").config.targets == presets["lora-qkv-split"].targets
    assert (presets["lorsu-per-head"].lora_layout, presets["lorsu-per-head"].proj_lora) == (
        "per_head", False)
    assert registry.create("gated-dora").config.penalty_reduction == "sum"
    assert presets["gated-lora-taps"].penalty_reduction == "mean"
    assert presets["gated-dora-taps"].penalty_reduction == "mean"
    literal, default = presets["llu-literal"], registry.create("llu").config
    assert (literal.penalty_norm, literal.lam) == ("frobenius", 1e3)
    assert (default.penalty_norm, default.lam) == ("mean_squared", 1e3)
    assert registry.create("lora").config.towers == "vision"


# ---------------------------------------------------------------- gated: eq. 4 sums


def test_sum_over_mean_penalty_ratio_is_the_number_of_gated_blocks():
    g = torch.Generator().manual_seed(0)
    for penalty in ("l1", "l2", "hinge"):
        plugins = {}
        for name in ("gated-lora", "gated-lora-taps"):
            p = registry.create(name, {"rank": 4, "penalty": penalty})
            p.configure(SimpleNamespace(clip=tiny_clip(layers=3)), None)
            plugins[name] = p
        scores = torch.rand(len(plugins["gated-lora"].adapters), generator=g) + 0.1
        for p in plugins.values():
            with torch.no_grad():
                for a, s in zip(p.adapters, scores):
                    a.score.fill_(float(s))
        ratio = plugins["gated-lora"].penalty() / plugins["gated-lora-taps"].penalty()
        assert len(plugins["gated-lora"].adapters) == 3 * 6
        torch.testing.assert_close(ratio, torch.tensor(18.0))


def test_vit_l14_has_144_gated_blocks():
    clip = build_on_meta("ViT-L-14")
    assert len(attach_adapters(clip, GatedLoRAConfig(), gated=True)) == 24 * 6


# ---------------------------------------------------------------- gated: can a gate move?


def session(batches: int, epochs: int, **training) -> SimpleNamespace:
    """What a gated plugin reads of the training loop: the session's loader, epochs and (in
    clbench's loop) the training config's optimizer and schedule."""
    loop = SimpleNamespace(dataloader=[None] * batches, train_epochs=epochs)
    if training:
        loop.training = SimpleNamespace(**{"optimizer": "adam", "scheduler": "cosine",
                                           "warmup": 0.1, **training})
    return loop


def test_a_session_too_short_for_score_lr_warns_at_its_start(capsys):
    p = registry.create("gated-lora", {"rank": 4})  # score_lr 1e-3, scores 0.05 above tau
    p.configure(SimpleNamespace(clip=tiny_clip()), session(batches=8, epochs=5))
    err = capsys.readouterr().err
    assert err.startswith("warning: gated adapters: in this session's 40 optimizer steps a gate "
                          "score moves at most about 0.04 ")
    assert "all open: the session trains plain LoRA" in err
    assert "strategy.score_lr >= 0.00125 lets them move" in err
    assert len(err.strip().splitlines()) == 1
    # the cosine schedule with warm-up halves the reach: 80 steps move a score about 0.041
    p.configure(SimpleNamespace(clip=tiny_clip()), session(batches=8, epochs=10, scheduler="cosine"))
    assert "80 optimizer steps a gate score moves at most about 0.041 " in capsys.readouterr().err
    # a later session starts from the scores the previous one left
    with torch.no_grad():
        for a in p.adapters[:3]:
            a.score.fill_(0.02)
    p.configure(SimpleNamespace(clip=tiny_clip()), session(batches=8, epochs=1))
    err = capsys.readouterr().err
    assert "less than the 0.05 between" in err and "each stays open or closed" in err
    # enough steps (exactly 50 at a constant rate; the proxy's 10 x 10 under the cosine schedule:
    # 0.051), a faster score_lr, SGD (no claim), or no known step count: no warning
    for params, strategy in (({}, session(batches=10, epochs=5)),
                             ({}, session(batches=10, epochs=10, scheduler="cosine")),
                             ({"score_lr": 1e-2}, session(batches=8, epochs=1)),
                             ({}, session(batches=8, epochs=1, optimizer="sgd")),
                             ({}, None)):
        q = registry.create("gated-dora-taps", {"rank": 4, **params})
        q.configure(SimpleNamespace(clip=tiny_clip()), strategy)
        assert capsys.readouterr().err == "", (params, strategy)
