"""Zero-shot: no training. The reference row every comparison needs (LoRSU paper, tables 3-4)."""

from __future__ import annotations

from clbench.strategies.base import StrategyPlugin


class ZeroShotPlugin(StrategyPlugin):
    """`configure` marks nothing trainable, so the training loop skips training entirely."""
