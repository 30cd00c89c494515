"""`clbench params`: trainable parameters of every strategy on an architecture, beside the
LoRSU paper's Table 9 ("Imperfect Vision Encoders", appendix: parameter efficiency).

Models are built on PyTorch's meta device (`clbench.models.meta`): shapes without weights or
memory, so even EVA01-g-14 (1 B parameters) is counted in seconds on a laptop. Percentages are of
the vision encoder, as in Table 9. The paper's OpenAI-CLIP-L-14 has 304.3 M vision parameters:
the 336-pixel `ViT-L-14-336` (open_clip's `ViT-L-14` has 304.0 M, a smaller position embedding);
its Table 9 row is shown for both. Presets and strategies the table does not list get no paper
number.
"""

from __future__ import annotations

import copy

from clbench.models.meta import build_on_meta

# Table 9: strategy -> (trainable M, % of the vision encoder) as printed in the paper
_VIT_L_14 = {"ln": (0.1, 0.03), "fft": (304.3, 100.0), "lora": (12.6, 4.15),
             "spu": (10.1, 3.31), "lorsu": (8.2, 2.71)}
PAPER_TABLE_9: dict[str, dict[str, tuple[float, float]]] = {
    "ViT-L-14": _VIT_L_14,
    "ViT-L-14-336": _VIT_L_14,
    "EVA01-g-14": {"ln": (0.2, 0.02), "fft": (1012.6, 100.0), "lora": (30.2, 2.98),
                   "spu": (34.6, 3.42), "lorsu": (24.6, 2.43)},
}


def paper_numbers(arch: str, strategy: str) -> tuple[float, float] | None:
    """(trainable M, percent) of Table 9 for a strategy's default on an architecture, if any."""
    return PAPER_TABLE_9.get(arch, {}).get(strategy)


def trainable_table(arch: str, strategies: list[str] | None = None) -> dict[str, dict]:
    from clbench.errors import UserError
    from clbench.strategies import registry

    names = strategies or registry.listed_names(registry.available())
    base = build_on_meta(arch)
    total = sum(p.numel() for p in base.visual.parameters())
    table = {}
    for name in names:
        try:
            plugin = registry.create(name)
        except UserError as err:
            if strategies:  # asked for by name: its error is the answer
                raise
            table[name] = {"broken": str(err), "total": int(total)}  # the others still count
            continue
        trainable = plugin.planned_trainable(copy.deepcopy(base))  # a copy: adapters attach
        paper = paper_numbers(arch, name)
        table[name] = {"trainable": int(trainable), "total": int(total),
                       "percent": 100.0 * trainable / total,
                       "paper_trainable_m": paper[0] if paper else None,
                       "paper_percent": paper[1] if paper else None}
    return table


def format_table(arch: str, table: dict[str, dict]) -> str:
    from clbench.run.report import table as render

    rows = [[name, "broken", t["broken"], ""] if "broken" in t else
            [name, f"{t['trainable'] / 1e6:.2f} M", f"{t['percent']:.2f}%",
             "" if t.get("paper_percent") is None
             else f"{t['paper_trainable_m']:g} M ({t['paper_percent']:.2f}%)"]
            for name, t in table.items()]
    total = next(iter(table.values()))["total"] if table else 0
    note = ("" if arch not in PAPER_TABLE_9 else
            "\npaper: the LoRSU paper's Table 9 for the strategy's default (blank: not in it)")
    return (f"{arch}: vision encoder {total / 1e6:.1f} M parameters\n"
            + render(["strategy", "trainable", "% of vision encoder", "paper"], rows) + note)
