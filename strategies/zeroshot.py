"""Zero-shot: no training. The reference row every comparison needs (LoRSU paper, tables 3-4)."""

from __future__ import annotations

from clbench.strategies.base import StrategyPlugin


class ZeroShotPlugin(StrategyPlugin):
    name = "zeroshot"
    # configure() marks nothing trainable, so the template skips training entirely.
