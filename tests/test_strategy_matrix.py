"""One test matrix over every built-in strategy and preset, on a small CLIP.

For each: two sessions through clbench's training loop (forward, backward, optimizer steps),
then save/load, and the set of tensors that changed must equal what the strategy's declaration
allows (`may_change` in its package's `__init__.py`: the tensors its paper, or its docstring,
says train; bit-for-bit comparison against a copy taken before training). The cases are read
from the registry, so a new strategy folder is a new case here with no edit of this file. The
check itself is `clbench.training.strategy_kit.check_strategy`, the one plugin packages run on
themselves.
"""

from __future__ import annotations

import pytest

from clbench.strategies import registry
from clbench.training.strategy_kit import check_strategy

BUILT_INS = registry.built_ins()


def test_the_matrix_covers_every_registered_built_in():
    """Every name the registry answers with, third-party plugins aside, is a case here; only the
    zero-shot reference declares that nothing trains."""
    assert set(BUILT_INS) == {n for n, i in registry.available().items()
                              if i.source == registry.BUILT_IN}
    assert [n for n, i in BUILT_INS.items() if not i.may_change] == ["zeroshot"]


@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_strategy_matrix(name):
    # on the proxy CLIP's architecture (random weights): presets at their defaults (rank 64)
    # need its width; the tensors that changed must be exactly what the declaration allows,
    # every listed group must have changed, and the saved state must reload with the same outputs
    info = BUILT_INS[name]
    check_strategy(name, list(info.may_change), ignore=list(info.check_ignore))
