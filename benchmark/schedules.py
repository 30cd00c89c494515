"""Learning-rate schedules shared by session training and the proxy's pretraining.

The LoRSU paper's protocol (appendix B) steps a cosine schedule with linear warm-up per batch;
the proxy CLIP is pretrained with the same shape, so both read it from here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["warmup_cosine"]


def warmup_cosine(total_steps: int, warmup_steps: int,
                  cosine: bool = True) -> Callable[[int], float]:
    """Multiplier of the peak rate at `step` (0-based): linear warm-up over `warmup_steps`, then
    a half cosine down to 0 at `total_steps` (or flat at 1 with `cosine=False`)."""

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        if not cosine:
            return 1.0
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor
