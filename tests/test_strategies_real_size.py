"""One training step of every registered strategy on a real-size architecture.

ViT-B-16 with random weights (no download) goes through clbench's training loop, so shape and
naming bugs of real open_clip models show up here rather than on a user's GPU.
"""

from __future__ import annotations

import copy

import open_clip
import pytest
import torch
from tiny_models import TinyImages, classifier, snapshot, train_stream, trainer

from clbench.strategies import registry


@pytest.fixture(scope="module")
def vit_b16():
    torch.manual_seed(0)
    return open_clip.create_model("ViT-B-16", pretrained=None), open_clip.get_tokenizer("ViT-B-16")


@pytest.mark.parametrize("name", sorted(n for n, i in registry.built_ins().items()
                                         if i.base is None))  # presets: their base's code
@pytest.mark.slow
def test_one_step_on_vit_b16(name, vit_b16):
    clip, tokenizer = vit_b16
    # adapters change the module tree: a copy per strategy
    model = classifier(copy.deepcopy(clip), templates=["a photo of a {}."], tokenizer=tokenizer)
    plugin = registry.create(name)
    if plugin.needs_replay:  # joint-replay: replayed images of the head's classes
        plugin.set_replay(TinyImages(labels=[0, 1], size=224), model.heads["toy"].class_names,
                          model.heads["toy"].templates)
    before = snapshot(model)
    loop = trainer(model, [plugin], epochs=1, batch_size=4, lr=1e-3)
    loop.train(train_stream(TinyImages(4, 0, size=224))[0], eval_streams=[])
    # parametrized weights appear as `<name>.parametrizations.weight.original`
    after = {k.replace(".parametrizations.", ".").replace(".original", ""): v
             for k, v in snapshot(model).items()}
    changed = {k for k in after if k not in before or not torch.equal(before[k], after[k])}
    assert not any(k.startswith("clip.transformer.") or k == "clip.logit_scale"
                   for k in changed), "the text tower and logit scale must stay frozen"
    # which tensors exactly is the strategy matrix's job (tests/test_strategy_matrix.py)
    assert (changed == set()) == (name == "zeroshot")
