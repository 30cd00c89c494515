"""F-FT: full fine-tuning of the tuned tower(s) (the LoRSU paper's F-FT baseline).

Every parameter of the vision tower trains (and of the text tower with `towers=both`); the
logit scale stays frozen, as in FLYP.
"""

from __future__ import annotations

from dataclasses import dataclass

from clbench.strategies.config_base import TowerConfig
from clbench.strategies.declaration import Declaration, plugin_attributes


@dataclass
class FFTConfig(TowerConfig):
    pass


STRATEGIES = (
    Declaration("fft", FFTConfig, ".plugin:FullFineTuningPlugin",
                "full fine-tuning of the vision tower (F-FT)",
                may_change=(r"clip\.visual\..*",)),
)

__getattr__ = plugin_attributes(__name__)
