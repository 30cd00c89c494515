"""LN: LayerNorm tuning (the LoRSU paper's LN baseline; about 0.03% of ViT-L/14, table 9).

Only the affine weights and biases of the LayerNorms of the tuned tower(s) train: `ln_pre`,
`ln_post` and each block's `ln_1`/`ln_2` (and the text tower's, with `towers=both`).
"""

from __future__ import annotations

from dataclasses import dataclass

from clbench.strategies.config_base import TowerConfig
from clbench.strategies.declaration import Declaration, plugin_attributes


@dataclass
class LNConfig(TowerConfig):
    pass


STRATEGIES = (
    Declaration("ln", LNConfig, ".plugin:LayerNormTuningPlugin",
                "LayerNorm tuning: only LayerNorm weights and biases train (LN)",
                may_change=(r"clip\.visual\.(ln_pre|ln_post)\..*",
                            r"clip\.visual\.transformer\.resblocks\.\d+\.ln_[12]\..*")),
)

__getattr__ = plugin_attributes(__name__)
