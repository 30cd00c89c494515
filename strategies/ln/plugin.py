"""LN's plugin (the method: this package's docstring)."""

from __future__ import annotations

from torch import nn

from clbench.strategies.base import StrategyPlugin, tower_modules
from clbench.strategies.ln import LNConfig


class LayerNormTuningPlugin(StrategyPlugin):
    config_class = LNConfig
    stateless_between_sessions = True  # what it trained is the model's weights

    def configure(self, classifier, strategy) -> None:
        for _, module in tower_modules(classifier.clip, self.config.towers):
            if isinstance(module, nn.LayerNorm):
                for p in module.parameters(recurse=False):
                    p.requires_grad_(True)
