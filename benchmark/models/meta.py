"""Architectures without weights: models built on PyTorch's meta device.

Shapes without weights or memory, so even EVA01-g-14 (1 B parameters) is built in seconds on a
laptop: `clbench params` counts trainable parameters on it, and a run checks its strategy's
settings against the architecture before it is recorded.
"""

from __future__ import annotations

import torch
from torch import nn

from clbench.models.loading import build_clip


def build_on_meta(arch: str) -> nn.Module:
    """`arch` (any open_clip architecture or clbench's own) on the meta device."""
    with torch.device("meta"):
        return build_clip(arch, device="meta")
