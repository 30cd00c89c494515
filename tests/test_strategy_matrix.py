"""One test matrix over every built-in strategy and preset, on a small CLIP.

For each: two sessions through clbench's training loop (forward, backward, optimizer steps),
then save/load, and the set of tensors that changed must equal what the strategy's declaration
allows (`may_change` in its package's `__init__.py`: the tensors its paper, or its docstring,
says train; bit-for-bit comparison against a copy taken before training). The cases are read
from the registry, so a new strategy folder is a new case here with no edit of this file. The
check itself is `clbench.training.strategy_kit.check_strategy`, the one plugin packages run on
themselves. Its last part, the crash-and-resume check (`check_resume`: resumed after session 1
from what a checkpoint holds, every strategy ends bit for bit where it ends uninterrupted), runs
in the second tier, beside the whole runs of `tests/test_resume.py` that check the same; the
default tier checks that every built-in declares how it resumes.
"""

from __future__ import annotations

import pytest

from clbench.strategies import registry
from clbench.strategies.base import resume_problem
from clbench.training.strategy_kit import check_resume, check_strategy

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
    # every listed group must have changed, and the saved state must reload with the same
    # outputs (the crash-and-resume part of check_strategy is the second-tier test below)
    info = BUILT_INS[name]
    check_strategy(name, list(info.may_change), ignore=list(info.check_ignore), resume=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_every_strategy_resumes_in_the_kit_to_the_uninterrupted_run(name):
    # check_strategy's last check, on its own (it trains one more session: +50% per case)
    check_resume(name)


def test_every_built_in_declares_how_it_resumes():
    """`clbench run --resume` refuses a run whose plugin class declares nothing; every built-in
    keeps nothing between sessions outside the model (masks, heads: recomputed each session)."""
    classes = {registry.load_class(name) for name in BUILT_INS}
    assert {c.__name__: resume_problem(c) for c in classes} == {c.__name__: None
                                                                  for c in classes}


def test_a_subclass_declares_its_resume_behaviour_again():
    """A declaration is the class's own: a subclass of a built-in may add state, so it inherits
    none, and half of `resume_state`/`load_resume_state` is named as missing."""
    from clbench.strategies.fft.plugin import FullFineTuningPlugin

    class WithMore(FullFineTuningPlugin):
        pass

    class Half(FullFineTuningPlugin):
        def resume_state(self):
            return {}

    assert "WithMore declares no resume behaviour" in resume_problem(WithMore)
    assert "defines `resume_state` but not `load_resume_state`: implement " \
        "`load_resume_state` in Half" in resume_problem(Half)


def test_the_strategy_kit_still_imports_from_its_old_path():
    """Plugin packages written against the earlier docs import `clbench.strategies.testing`: it
    still gives the kit, with a warning naming where the kit lives now."""
    import importlib
    import sys

    from clbench.training import strategy_kit

    sys.modules.pop("clbench.strategies.testing", None)
    with pytest.warns(DeprecationWarning, match="clbench.training.strategy_kit"):
        old = importlib.import_module("clbench.strategies.testing")
    assert old.check_strategy is strategy_kit.check_strategy
    assert set(old.__all__) == set(strategy_kit.__all__)
