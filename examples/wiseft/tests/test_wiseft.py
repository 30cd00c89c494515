"""The WiSE-FT plugin under clbench's own strategy checks (`clbench.training.strategy_kit`).

Run after installing the package (`pip install -e .`): the strategy is looked up by its
entry-point name, as `clbench run --strategy wiseft` does.
"""

from __future__ import annotations

import pytest
import torch
from clbench_wiseft.plugin import WiSEFTPlugin

from clbench.errors import ConfigError, UserError
from clbench.strategies import registry
from clbench.training.strategy_kit import (
    check_resume,
    check_strategy,
    tiny_sessions,
    train_sessions,
)

VISION = r"clip\.visual\..*"


def test_the_entry_point_names_the_plugin():
    info = registry.info("wiseft")
    assert (info.target, info.distribution) == ("clbench_wiseft.plugin:WiSEFTPlugin",
                                                 "clbench-wiseft")
    assert registry.load_class("wiseft") is WiSEFTPlugin


def test_default_alpha_changes_the_vision_tower_only():
    # the strategy matrix's check: two sessions, exactly the vision tower changed, the plan on
    # a weightless copy works, the saved model reloads with the same outputs, and a run resumed
    # after session 1 ends where an uninterrupted one does
    check_strategy("wiseft", [VISION])


@pytest.mark.parametrize("towers", ["vision", "both"])
def test_a_crash_and_resume_equals_the_uninterrupted_run(towers):
    # crashed after session 1 and resumed from what its checkpoint holds (the zero-shot copy
    # included, through resume_state), the run mixes with the zero-shot weights, not with the
    # resumed ones: every tensor and session fact ends bit for bit as without the crash
    check_resume("wiseft", {"towers": towers})


def test_a_checkpoint_without_the_zero_shot_weights_is_refused():
    # mixing with the weights the run resumed with would store other numbers: refuse instead
    with pytest.raises(UserError, match="no WiSE-FT zero-shot weights"):
        WiSEFTPlugin().load_resume_state({})


def test_alpha_zero_changes_nothing():
    check_strategy("wiseft", [], {"alpha": 0.0})


def test_alpha_one_is_fft_bit_for_bit():
    mixed = train_sessions("wiseft", {"alpha": 1.0}).after()
    fft = train_sessions("fft").after()
    assert mixed.keys() == fft.keys()
    assert all(torch.equal(mixed[k], fft[k]) for k in fft)


def test_the_weights_are_the_papers_mix():
    # one session from the same start: alpha 1 is the fine-tuned model theta_ft, and alpha 0.3
    # must end at (1 - 0.3) * theta_zero_shot + 0.3 * theta_ft, tensor by tensor
    first = tiny_sessions()[:1]
    tuned = train_sessions("wiseft", {"alpha": 1.0}, sessions=first)
    mixed = train_sessions("wiseft", {"alpha": 0.3}, sessions=first)
    theta_ft, theta_mix = tuned.after(), mixed.after()
    vision = [k for k in theta_ft if k.startswith("clip.visual.")]
    assert vision
    for key in vision:
        expected = 0.7 * mixed.before[key] + 0.3 * theta_ft[key]
        assert torch.equal(theta_mix[key], expected), key
    assert all(torch.equal(theta_mix[k], theta_ft[k]) for k in theta_ft if k not in vision)
    facts = mixed.plugin.session_facts()
    assert facts["alpha"] == 0.3 and 0.0 < facts["relative_drift"] < 1.0


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_alpha_outside_zero_one_is_refused_naming_the_key(alpha):
    with pytest.raises(ConfigError, match=r"strategy\.alpha"):
        registry.create("wiseft", {"alpha": alpha})
