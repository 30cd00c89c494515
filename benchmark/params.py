"""`clbench params`: trainable parameters of every strategy on an architecture (paper table 9).

Models are built on PyTorch's meta device (`clbench.models.meta`): shapes without weights or
memory, so even EVA01-g-14 (1 B parameters) is counted in seconds on a laptop. Percentages are of
the vision encoder, as in the LoRSU paper's table 9.
"""

from __future__ import annotations

import copy

from clbench.models.meta import build_on_meta


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
