"""SPU: exact mask density, bit-identity outside the mask after real sessions (Adam and AdamW
with weight decay), the official preset (output-norm score, biases, projection, both towers),
a timm trunk, config errors."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from avalanche.core import SupervisedPlugin
from tiny_models import (
    WIDTH,
    TinyImages,
    classifier,
    snapshot,
    tiny_clip,
    tiny_timm_clip,
    train_stream,
    trainer,
)

from clbench.errors import ConfigError
from clbench.strategies import registry
from clbench.strategies.masking import accumulate_gradients, topk_mask
from clbench.strategies.spu import count_trainable, fc1_weights

FC1_NUMEL = 4 * WIDTH * WIDTH  # 16384


def fake_strategy(model, n=6):
    return SimpleNamespace(model=model, adapted_dataset=TinyImages(n, 0), train_mb_size=2,
                           device=torch.device("cpu"))


class Probe(SupervisedPlugin):
    def __init__(self, target):
        super().__init__()
        self.target = target
        self.frozen = {}

    def after_training_exp(self, strategy, **kwargs):
        names = {id(p): n for n, p in strategy.model.named_parameters()}
        self.frozen = {names[id(p)]: f.clone() for p, f, _ in self.target.masks.entries}
        self.trainable = {n for n, p in strategy.model.named_parameters() if p.requires_grad}


def run_session(model, p, optimizer="adam", weight_decay=0.0):
    probe = Probe(p)
    loop = trainer(model, [probe, p], epochs=2, batch_size=2, lr=1e-2, optimizer=optimizer,
                   weight_decay=weight_decay)
    stream = train_stream(TinyImages(6, 0))
    before = snapshot(model)
    loop.train(stream[0], eval_streams=[])
    return before, snapshot(model), probe


# ---------------------------------------------------------------- masks


def test_mask_density_is_exactly_floor_sparsity_times_numel_per_layer():
    model = classifier(tiny_clip())
    p = registry.create("spu", {"sparsity": 0.15})
    p.configure(model, fake_strategy(model))
    k = int(0.15 * FC1_NUMEL)  # floor(2457.6) = 2457, as int(numel * rate) in the official code
    assert k == 2457 != round(0.15 * FC1_NUMEL)
    assert len(p.masks.entries) == 2
    weights = [w for _, w in fc1_weights(model.clip, "vision")]
    grads = accumulate_gradients(fake_strategy(model), weights)
    for (param, frozen, values), w, g in zip(p.masks.entries, weights, grads):
        assert param is w and param.requires_grad
        assert (~frozen).sum() == k and torch.equal(values, w.detach())  # saved whole
        assert torch.equal(~frozen, topk_mask(g.abs(), k))  # |G| of the task loss
    facts = p.session_facts()
    assert facts["mask_density"] == k / FC1_NUMEL
    assert all(d == k / FC1_NUMEL for d in facts["mask_density_per_layer"].values())
    assert facts["trainable_entries"] == 2 * k == count_trainable(model.clip, p.config)["total"]
    trainable = [n for n, q in model.named_parameters() if q.requires_grad]
    assert all(n.endswith("mlp.c_fc.weight") and n.startswith("clip.visual.") for n in trainable)


def test_official_preset_uses_the_output_norm_score_biases_projection_and_both_towers():
    model = classifier(tiny_clip())
    p = registry.create("spu-official")
    cfg = p.config
    assert (cfg.score, cfg.towers, cfg.train_biases, cfg.train_projection, cfg.sparsity) == (
        "output_norm", "both", True, True, 0.1)
    p.configure(model, fake_strategy(model))
    weights = [w for _, w in fc1_weights(model.clip, "both")]
    assert len(p.masks.entries) == 3  # two vision blocks + one text block
    norm_grads = accumulate_gradients(fake_strategy(model), weights, score="output_norm")
    loss_grads = accumulate_gradients(fake_strategy(model), weights, score="loss")
    differs = False
    for (_, frozen, _), w, gn, gl in zip(p.masks.entries, weights, norm_grads, loss_grads):
        k = int(0.1 * w.numel())
        assert torch.equal(~frozen, topk_mask(gn.abs(), k))
        differs |= not torch.equal(~frozen, topk_mask(gl.abs(), k))
    assert differs, "the output-norm mask should differ from the task-loss mask"
    clip = model.clip
    assert clip.visual.proj.requires_grad
    assert all(b.mlp.c_fc.bias.requires_grad for b in clip.visual.transformer.resblocks)
    assert all(b.mlp.c_fc.bias.requires_grad for b in clip.transformer.resblocks)
    assert not clip.text_projection.requires_grad and not clip.logit_scale.requires_grad
    assert p.session_facts()["trainable_entries"] == count_trainable(clip, cfg)["total"]


# ---------------------------------------------------------------- real sessions


@pytest.mark.parametrize("optimizer,weight_decay", [("adam", 0.0), ("adamw", 0.1)])
def test_session_leaves_everything_outside_the_mask_bit_identical(optimizer, weight_decay):
    model = classifier(tiny_clip())
    p = registry.create("spu", {"sparsity": 0.1})
    before, after, probe = run_session(model, p, optimizer, weight_decay)
    assert len(probe.frozen) == 2 and p.masks.entries == []  # cleared for the next session
    for name, frozen in probe.frozen.items():
        assert name.startswith("clip.visual.") and name.endswith("mlp.c_fc.weight")
        assert torch.equal(after[name][frozen], before[name][frozen])
        assert (after[name][~frozen] != before[name][~frozen]).float().mean() > 0.5
    moved = [k for k in before if k not in probe.frozen and not torch.equal(before[k], after[k])]
    assert moved == [], f"tensors outside fc1 changed: {moved}"


def test_official_session_trains_biases_projection_and_text_fc1_only():
    model = classifier(tiny_clip())
    p = registry.create("spu-official")
    before, after, probe = run_session(model, p, "adamw", 0.1)
    assert any(n.startswith("clip.transformer.") for n in probe.frozen)  # text fc1 masked too
    for name, frozen in probe.frozen.items():
        assert torch.equal(after[name][frozen], before[name][frozen])
        assert not torch.equal(after[name], before[name])
    free = {n for n in probe.trainable if n not in probe.frozen}
    assert free == {"clip.visual.proj"} | {n.replace("weight", "bias") for n in probe.frozen}
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert "clip.visual.proj" in moved
    assert moved <= free | set(probe.frozen)


def test_timm_trunk_session():
    model = classifier(tiny_timm_clip())
    p = registry.create("spu", {"sparsity": 0.05})
    before, after, probe = run_session(model, p, "adamw", 0.1)
    assert sorted(probe.frozen) == [f"clip.visual.trunk.blocks.{i}.mlp.fc1.weight"
                                    for i in range(2)]
    for name, frozen in probe.frozen.items():
        assert (~frozen).sum() == int(0.05 * frozen.numel())
        assert torch.equal(after[name][frozen], before[name][frozen])
        assert not torch.equal(after[name], before[name])
    assert [k for k in before if k not in probe.frozen
            and not torch.equal(before[k], after[k])] == []


def test_config_errors():
    for bad in ({"sparsity": 0}, {"sparsity": 1.2}, {"score": "fisher"},
                {"score_fraction": 0}, {"towers": "text"}):
        with pytest.raises(ConfigError, match="strategy." + next(iter(bad))):
            registry.create("spu", bad)
