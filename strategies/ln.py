"""LN: LayerNorm tuning (the LoRSU paper's LN baseline; about 0.03% of ViT-L/14, table 9).

Only the affine weights and biases of the LayerNorms of the tuned tower(s) train: `ln_pre`,
`ln_post` and each block's `ln_1`/`ln_2` (and the text tower's, with `towers=both`).
"""

from __future__ import annotations

from torch import nn

from clbench.strategies.base import StrategyPlugin, tower_modules
from clbench.strategies.configs import LNConfig


class LayerNormTuningPlugin(StrategyPlugin):
    config_class = LNConfig

    def configure(self, classifier, strategy) -> None:
        for _, module in tower_modules(classifier.clip, self.config.towers):
            if isinstance(module, nn.LayerNorm):
                for p in module.parameters(recurse=False):
                    p.requires_grad_(True)
