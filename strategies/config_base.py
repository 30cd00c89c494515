"""The config parts every built-in strategy shares: the base `StrategyConfig`, `TowerConfig`
(the `towers` option) and the names of the block weights adapters and masks address.

Torch-free, as each strategy package's `__init__` that builds on it: `clbench run` and the quick
commands check a strategy's parameters (`registry.check_params`) in well under a second, before
the training stack is imported. `clbench.strategies.base` re-exports the two config classes for
plugins (docs/writing-a-strategy.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from clbench.options import option

# the weights of a transformer block that adapters and masks address (`blocks.BlockView`)
TARGETS = ("q", "k", "v", "out_proj", "fc1", "fc2")
QKV = ("q", "k", "v")


@dataclass
class StrategyConfig:
    """Base for strategy configs; a subclass may add `validate(self)` raising ConfigError."""


@dataclass
class TowerConfig(StrategyConfig):
    """The tuned tower(s). Default `vision`, with one sentence of the LoRSU paper against it:
    section 5.1 (Setting, "Methods.") says "When finetuning CLIP, we fine-tune both visual and text
    encoders following [8] (FLYP) with the same contrastive image language loss". Everything
    else in that paper concerns the vision encoder alone: the method updates "the vision
    encoder separately" (introduction and conclusion) so that the VLMs, which use only CLIP's
    image encoder, inherit the fix; the captions of Tables 3 and 12 say the methods "fine-tune
    the visual encoder"; Table 9's counts are percentages of the vision encoder and match only
    vision-tower layouts (`clbench params`). So the default is the vision tower trained with FLYP's
    contrastive loss (which uses the frozen text tower), and `towers: both` is the reading of
    section 5.1's sentence, available to every strategy with this option (e.g.
    `--set strategy.towers=both`).
    """

    towers: Literal["vision", "both"] = option(
        "vision", "which encoder(s) to tune: vision (the LoRSU paper's method and Table 9) or "
        "both (its section 5.1: 'we fine-tune both visual and text encoders')")
