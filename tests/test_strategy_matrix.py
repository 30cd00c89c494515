"""One test matrix over every registered strategy (built-ins and presets), on a small CLIP.

For each: two sessions through clbench's training loop (forward, backward, optimizer steps),
then save/load, and the set of tensors that changed must equal the set `MAY_CHANGE` below allows
for it, the tensors its paper (or its module docstring in strategies/) says train (bit-for-bit
comparison against a copy taken before training). The check itself is
`clbench.training.strategy_kit.check_strategy`, the one plugin packages run on themselves.
"""

from __future__ import annotations

import pytest

from clbench.strategies import registry
from clbench.training.strategy_kit import check_strategy

V = r"clip\.visual\.transformer\.resblocks\.\d+\."
# tensors each strategy may change (regular expressions over state-dict keys, after stripping
# parametrization wrappers); every listed group must also actually change
MAY_CHANGE = {
    "zeroshot": [],
    "fft": [r"clip\.visual\..*"],
    "ln": [r"clip\.visual\.(ln_pre|ln_post)\..*", V + r"ln_[12]\..*"],
    "lora": [r".*\.adapters?\..*"],
    "dora": [r".*\.adapters?\..*"],
    "gated-lora": [r".*\.adapters?\..*"],
    "gated-dora": [r".*\.adapters?\..*"],
    "spu": [V + r"mlp\.c_fc\.weight"],
    "spu-official": [r"clip\.(visual\.)?transformer\.resblocks\.\d+\.mlp\.c_fc\.(weight|bias)",
                     r"clip\.visual\.proj"],
    "lora-qkv-split": [r".*\.adapters?\..*"],
    "dora-qkv-split": [r".*\.adapters?\..*"],
    "gated-lora-taps": [r".*\.adapters?\..*"],
    "gated-dora-taps": [r".*\.adapters?\..*"],
    # the projection LoRA is merged into visual.proj after each session (Table 9's layout)
    "lorsu": [V + r"attn\.in_proj_weight", V + r"mlp\.c_fc\.weight", r"clip\.visual\.proj"],
    "lorsu-per-head": [V + r"attn\.in_proj_weight", V + r"mlp\.c_fc\.weight"],
    "lorsu-official": [V + r"attn\.in_proj_(weight|bias)", V + r"mlp\.c_fc\.(weight|bias)",
                       r"clip\.visual\.proj"],
    "llu": [r"embedding_adapters\.(image|text)\..*"],
    # the literal penalty pins W near I, but Adam's steps still move it within one step of I
    "llu-literal": [r"embedding_adapters\.(image|text)\..*"],
    "joint-replay": [r"clip\.visual\..*"],
}


# tensors left out of the comparison: LLU's stored embeddings (a buffer, not a weight)
IGNORE = [r".*memory"]


def test_every_registered_strategy_has_a_row():
    assert set(registry.available()) == set(MAY_CHANGE)


@pytest.mark.parametrize("name", sorted(MAY_CHANGE))
def test_strategy_matrix(name):
    # on the proxy CLIP's architecture (random weights): presets at their defaults (rank 64)
    # need its width; the tensors that changed must be exactly what MAY_CHANGE allows, every
    # listed group must have changed, and the saved state must reload with the same outputs
    check_strategy(name, MAY_CHANGE[name], ignore=IGNORE)
