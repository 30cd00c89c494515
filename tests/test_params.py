"""`clbench params`: trainable counts from the architecture alone (meta device)."""

from __future__ import annotations

import json

from torch import nn

from clbench.cli import main
from clbench.params import build_on_meta, trainable_table


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
    assert set(out) == {"ln"} and set(out["ln"]) == {"trainable", "total", "percent"}
