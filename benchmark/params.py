"""`clbench params`: trainable parameters of every strategy on an architecture (paper table 9).

Models are built on PyTorch's meta device: shapes without weights or memory, so even
EVA01-g-14 (1 B parameters) is counted in seconds on a laptop. Percentages are of the vision
encoder, as in the LoRSU paper's table 9.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from clbench.backbones import PROXY_ALIASES
from clbench.errors import UserError
from clbench.names import unknown_name_message


def build_on_meta(arch: str) -> nn.Module:
    if arch in PROXY_ALIASES:
        from clbench.scenarios.proxy.model import build_proxy_clip

        with torch.device("meta"):
            return build_proxy_clip()
    import logging

    import open_clip

    logging.getLogger().setLevel(logging.ERROR)  # "no pretrained weights loaded": intended here
    if arch not in open_clip.list_models():
        raise UserError(unknown_name_message("model", arch, open_clip.list_models()))
    with torch.device("meta"):
        return open_clip.create_model(arch, pretrained=None, device="meta")


def trainable_table(arch: str, strategies: list[str] | None = None) -> dict[str, dict]:
    from clbench.strategies import registry

    names = strategies or sorted(registry.available())
    base = build_on_meta(arch)
    total = sum(p.numel() for p in base.visual.parameters())
    table = {}
    for name in names:
        plugin = registry.create(name)
        trainable = plugin.planned_trainable(copy.deepcopy(base))  # a copy: adapters attach
        table[name] = {"trainable": int(trainable), "total": int(total),
                       "percent": 100.0 * trainable / total}
    return table


def format_table(arch: str, table: dict[str, dict]) -> str:
    from clbench.report import table as render

    rows = [[name, f"{t['trainable'] / 1e6:.2f} M", f"{t['percent']:.2f}%"]
            for name, t in table.items()]
    total = next(iter(table.values()))["total"] if table else 0
    return (f"{arch}: vision encoder {total / 1e6:.1f} M parameters\n"
            + render(["strategy", "trainable", "% of vision encoder"], rows))
