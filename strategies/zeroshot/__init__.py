"""Zero-shot: no training. The reference row every comparison needs (LoRSU paper, tables 3-4).

Its plugin marks nothing trainable, so the training loop skips training entirely; its config is
the empty base `StrategyConfig`.
"""

from __future__ import annotations

from clbench.strategies.config_base import StrategyConfig
from clbench.strategies.declaration import Declaration, plugin_attributes

STRATEGIES = (
    Declaration("zeroshot", StrategyConfig, ".plugin:ZeroShotPlugin",
                "no training: the zero-shot reference", may_change=(), reference=True),
)

__getattr__ = plugin_attributes(__name__)
