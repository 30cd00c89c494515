"""Predictions do not depend on the batch: every built-in strategy, through the evaluator.

A method whose prediction for an image depends on the other images of its batch makes its
numbers depend on the eval batch size and the eval set's order (the known case: the
`batchwise_prompt` option of L2P's and DualPrompt's reference code, one prompt set per test
batch by majority vote). `clbench.training.strategy_kit.check_batch_invariance` trains a
strategy for one short session on the kit's proxy CLIP and predicts the same eight images
through `clbench.training.evaluation` at eval batch 1 and 256, from the images (`predict`) and
from kept features (`predict_from_features`): every prediction must be equal. The cases are the
strategy matrix's (`tests/test_strategy_matrix.py`: every built-in and preset, read from the
registry). One strategy runs in the default tier, the others in the second (`slow`): at batch 1
each image is its own forward pass, and adapters recompute their weights at every pass.
"""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from clbench.strategies import registry
from clbench.strategies.base import StrategyConfig, StrategyPlugin
from clbench.training import strategy_kit
from clbench.training.strategy_kit import check_batch_invariance, eval_images

BUILT_INS = sorted(registry.built_ins())
# the default tier's case: LLU's adapter works on the normalised features, so both of the
# evaluator's paths run a trained module (`predict_from_features` too), and it looks features
# up in a memory: a per-batch lookup is the mistake this check is for
DEFAULT_TIER = "llu"


def test_the_default_tier_case_is_a_built_in():
    assert DEFAULT_TIER in BUILT_INS


def test_a_built_in_predicts_every_image_the_same_at_eval_batch_1_and_256():
    predicted = check_batch_invariance(DEFAULT_TIER)
    assert len(predicted) == len(eval_images())


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in BUILT_INS if n != DEFAULT_TIER])
def test_every_built_in_predicts_every_image_the_same_at_every_eval_batch(name):
    check_batch_invariance(name)


class BatchCentred(nn.Module):
    """Subtracts the batch's mean image feature: batch-wise normalisation at evaluation. At
    batch 1 every feature becomes zero (every logit 0, every prediction class 0)."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features - features.mean(dim=0, keepdim=True)


class BatchCentring(StrategyPlugin):
    """Trains nothing; puts `BatchCentred` on the image embeddings."""

    config_class = StrategyConfig
    stateless_between_sessions = True

    def configure(self, classifier, strategy) -> None:
        classifier.embedding_adapters["image"] = BatchCentred()


def test_a_plugin_that_normalises_by_the_batch_mean_is_caught():
    with pytest.raises(AssertionError) as caught:
        check_batch_invariance(BatchCentring())
    message = str(caught.value)
    found = re.search(r"^BatchCentring: its predictions depend on the evaluation batch: "
                      r"evaluation image (\d+) \(of 8, true class (\d)\) is predicted class 0 "
                      r"\('red star'\) by predict at eval batch 1 but class ([123]) \('[a-z ]+'\) "
                      r"by predict at eval batch 256; (\d) of 8 predictions differ", message)
    assert found, message
    assert "no statistic over the batch (a batch mean" in message
    assert "torch.allclose: no" in message


def test_the_features_path_is_compared_too(monkeypatch):
    """The evaluator predicts from kept features while the image tower is unchanged: a batch
    dependence there alone (here a fake `predict_from_features` that shifts every prediction
    of a batch larger than one) is caught and named."""
    real = strategy_kit.predict_from_features

    def batch_dependent(model, features, head, batch_size, device):
        predicted = real(model, features, head, batch_size, device)
        return predicted if batch_size == 1 else (predicted + 1) % 4

    monkeypatch.setattr(strategy_kit, "predict_from_features", batch_dependent)
    with pytest.raises(AssertionError, match=r"zeroshot: .* evaluation image 0 \(of 8, true "
                       r"class 0\) .* by predict at eval batch 1 but .* by "
                       r"predict_from_features at eval batch 256 \(features kept at eval "
                       r"batch 1\); 8 of 8 predictions differ"):
        check_batch_invariance("zeroshot")


@pytest.mark.parametrize("sizes", [(1,), (0, 256), (1, 2.5), (True, 256)])
def test_batch_sizes_must_be_two_positive_integers_or_more(sizes):
    with pytest.raises(ValueError, match="must hold two positive integers or more"):
        check_batch_invariance("zeroshot", batch_sizes=sizes)
