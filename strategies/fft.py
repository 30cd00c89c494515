"""F-FT: full fine-tuning of the tuned tower(s) (the LoRSU paper's F-FT baseline).

Every parameter of the vision tower trains (and of the text tower with `towers=both`); the
logit scale stays frozen, as in FLYP.
"""

from __future__ import annotations

from clbench.strategies.base import StrategyPlugin, set_trainable, tower_parameters
from clbench.strategies.configs import FFTConfig


class FullFineTuningPlugin(StrategyPlugin):
    config_class = FFTConfig

    def configure(self, classifier, strategy) -> None:
        set_trainable(tower_parameters(classifier.clip, self.config.towers))
