"""One training step of every registered strategy on a real-size architecture.

ViT-B-16 with random weights (no download) goes through the real template, so shape and naming
bugs of real open_clip models show up here rather than on a user's GPU.
"""

from __future__ import annotations

import copy

import open_clip
import pytest
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.utils.utils import as_classification_dataset
from avalanche.training.plugins import EvaluationPlugin

from clbench.classifier import CLIPClassifier
from clbench.config import TrainingConfig
from clbench.strategies import registry
from clbench.strategies.base import snapshot
from clbench.template import CLIPTemplate


class TinyImages(torch.utils.data.Dataset):
    def __init__(self, n: int = 4, size: int = 224):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, size, size, generator=g)
        self.targets = [i % 2 for i in range(n)]

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.x[i], self.targets[i]


@pytest.fixture(scope="module")
def vit_b16():
    torch.manual_seed(0)
    return open_clip.create_model("ViT-B-16", pretrained=None), open_clip.get_tokenizer("ViT-B-16")


@pytest.mark.parametrize("name", sorted(registry.BUILTIN))
def test_one_step_on_vit_b16(name, vit_b16):
    clip, tokenizer = vit_b16
    model = CLIPClassifier(copy.deepcopy(clip), tokenizer)  # adapters change the module tree
    model.register_head("toy", ["cat", "dog"], ["a photo of a {}."])
    plugin = registry.create(name)
    before = snapshot(model)
    template = CLIPTemplate(model=model, training=TrainingConfig(epochs=1, batch_size=4, lr=1e-3),
                            device=torch.device("cpu"), seed=0, plugins=[plugin],
                            evaluator=EvaluationPlugin(loggers=[]))
    bench = benchmark_from_datasets(train=[as_classification_dataset(TinyImages())])
    template.train(bench.train_stream[0], eval_streams=[])
    # parametrized weights appear as `<name>.parametrizations.weight.original`
    after = {k.replace(".parametrizations.", ".").replace(".original", ""): v
             for k, v in snapshot(model).items()}
    changed = {k for k in after if k not in before or not torch.equal(before[k], after[k])}
    assert not any(k.startswith("clip.transformer.") or k == "clip.logit_scale"
                   for k in changed), "the text tower and logit scale must stay frozen"
    # which tensors exactly is the strategy matrix's job (tests/test_strategy_matrix.py)
    assert (changed == set()) == (name == "zeroshot")
