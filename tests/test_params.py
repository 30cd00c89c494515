"""`clbench params`: trainable counts from the architecture alone (meta device)."""

from __future__ import annotations

import json

from torch import nn

from clbench.cli.main import main
from clbench.cli.params import trainable_table
from clbench.models.meta import build_on_meta


def test_counts_follow_each_strategy_rule():
    clip = build_on_meta("proxy-vit-tiny")
    assert all(p.is_meta for p in clip.parameters())  # no weights, no memory
    vision = sum(p.numel() for p in clip.visual.parameters())
    layer_norms = sum(p.numel() for m in clip.visual.modules() if isinstance(m, nn.LayerNorm)
                      for p in m.parameters())
    fc1 = [m.weight.numel() for n, m in clip.visual.named_modules() if n.endswith("mlp.c_fc")]
    table = trainable_table("proxy-vit-tiny", ["zeroshot", "fft", "ln", "spu", "lora", "lorsu"])
    assert table["zeroshot"]["trainable"] == 0
    assert table["fft"]["trainable"] == vision and table["fft"]["percent"] == 100.0
    assert table["ln"]["trainable"] == layer_norms
    assert table["spu"]["trainable"] == sum(int(0.1 * n) for n in fc1)
    assert 0 < table["lorsu"]["trainable"] < table["lora"]["trainable"] < vision


def test_cli_json_shape(capsys):
    assert main(["params", "--model", "proxy-vit-tiny", "--strategy", "ln", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"ln"} and set(out["ln"]) == {"trainable", "total", "percent",
                                                     "paper_trainable_m", "paper_percent"}
    assert out["ln"]["paper_percent"] is None  # the paper's Table 9 has no proxy row


def test_eva_clip_timm_trunk_matches_the_papers_table_9():
    """EVA01-g-14 (a timm trunk): the paper reports LN 0.02% and SPU 3.42% of 1012.6 M."""
    table = trainable_table("EVA01-g-14", ["ln", "spu", "lorsu", "llu"])
    assert round(table["ln"]["total"] / 1e6, 1) == 1012.6
    assert round(table["ln"]["percent"], 2) == 0.02
    assert round(table["spu"]["percent"], 2) == 3.42
    assert 0 < table["lorsu"]["percent"] < table["spu"]["percent"]
    assert table["llu"]["trainable"] == 2 * (1024 * 1024 + 1024)  # adapters on 1024-d embeddings
    assert table["spu"]["paper_percent"] == 3.42 and table["llu"]["paper_percent"] is None


def test_table_shows_the_papers_column(capsys):
    assert main(["params", "--model", "ViT-L-14", "--strategy", "lorsu", "--strategy",
                 "lorsu-per-head"]) == 0
    out = capsys.readouterr().out
    assert "paper" in out.splitlines()[1]
    (lorsu,) = [line for line in out.splitlines() if line.startswith("lorsu ")]
    (per_head,) = [line for line in out.splitlines() if line.startswith("lorsu-per-head")]
    assert lorsu.rstrip().endswith("8.2 M (2.71%)") and "2.71%" in lorsu.split()[3]
    assert per_head.rstrip().endswith("3.31%")  # no paper number for a preset
