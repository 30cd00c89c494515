"""Tiny open_clip models, data and training helpers shared by the strategy tests.

They live in `clbench.training.strategy_kit` (the strategy test kit, public so that plugin packages
test themselves with it); this module re-exports them under their historical names.
"""

from __future__ import annotations

from clbench.training.strategy_kit import (
    DH,
    HEADS,
    WIDTH,
    TinyImages,
    classifier,
    snapshot,
    text_cfg,
    tiny_clip,
    tiny_timm_clip,
    tokenize,
    train_stream,
    trainer,
)

__all__ = ["DH", "HEADS", "WIDTH", "TinyImages", "classifier", "snapshot", "text_cfg",
           "tiny_clip", "tiny_timm_clip", "tokenize", "train_stream", "trainer"]
