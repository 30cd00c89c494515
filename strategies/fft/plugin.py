"""F-FT's plugin (the method: this package's docstring)."""

from __future__ import annotations

from clbench.strategies.base import StrategyPlugin, set_trainable, tower_parameters
from clbench.strategies.fft import FFTConfig


class FullFineTuningPlugin(StrategyPlugin):
    config_class = FFTConfig
    stateless_between_sessions = True  # what it trained is the model's weights

    def configure(self, classifier, strategy) -> None:
        set_trainable(tower_parameters(classifier.clip, self.config.towers))
