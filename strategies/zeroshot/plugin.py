"""The zero-shot reference's plugin (the method: this package's docstring)."""

from __future__ import annotations

from clbench.strategies.base import StrategyPlugin


class ZeroShotPlugin(StrategyPlugin):
    """`configure` marks nothing trainable, so the training loop skips training entirely."""

    stateless_between_sessions = True  # nothing at all
