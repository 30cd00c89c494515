"""`CLIPClassifier.text_tower_trainable` decides whether text embeddings may be cached: it must
say True exactly when some parameter of the text side requires grad, whatever the model's
structure (adapters added into the text tower, a text-side embedding adapter)."""

from __future__ import annotations

import random

import torch
from torch import nn

from clbench.training.strategy_kit import classifier, tiny_clip

NOT_TEXT = ("logit_scale", "logit_bias")


def by_names(model) -> bool:
    """The definition, spelled out over every named parameter."""
    clip_side = any(p.requires_grad for n, p in model.clip.named_parameters()
                    if not n.startswith("visual.") and n not in NOT_TEXT)
    adapter = "text" in model.embedding_adapters and any(
        p.requires_grad for p in model.embedding_adapters["text"].parameters())
    return clip_side or adapter


class Lowrank(nn.Module):
    """An adapter wrapped around a linear layer, as LoRA strategies insert them."""

    def __init__(self, base: nn.Linear):
        super().__init__()
        self.base = base
        self.down = nn.Linear(base.in_features, 2, bias=False)
        self.up = nn.Linear(2, base.out_features, bias=False)

    def forward(self, x):
        return self.base(x) + self.up(self.down(x))


def test_only_text_side_parameters_count():
    model = classifier(tiny_clip())
    assert not model.text_tower_trainable()
    model.clip.logit_scale.requires_grad_(True)
    model.clip.visual.requires_grad_(True)
    assert not model.text_tower_trainable(), "the image tower and logit scale are not text"
    for name in ("positional_embedding", "text_projection", "ln_final.weight",
                 "transformer.resblocks.0.mlp.c_fc.bias", "token_embedding.weight"):
        model.clip.requires_grad_(False)
        dict(model.clip.named_parameters())[name].requires_grad_(True)
        assert model.text_tower_trainable(), name


def test_an_adapter_added_later_and_a_text_embedding_adapter_count():
    model = classifier(tiny_clip())
    block = model.clip.transformer.resblocks[0]
    block.mlp.c_fc = Lowrank(block.mlp.c_fc).requires_grad_(False)
    assert not model.text_tower_trainable()
    block.mlp.c_fc.up.weight.requires_grad_(True)
    assert model.text_tower_trainable()

    block.mlp.c_fc.requires_grad_(False)
    model.embedding_adapters["image"] = nn.Linear(32, 32)
    assert not model.text_tower_trainable(), "an image adapter is not text"
    model.embedding_adapters["text"] = nn.Linear(32, 32)
    assert model.text_tower_trainable()
    model.embedding_adapters["text"].requires_grad_(False)
    assert not model.text_tower_trainable()


def test_agrees_with_the_definition_on_random_flags():
    model = classifier(tiny_clip())
    model.embedding_adapters["text"] = nn.Linear(32, 32)
    params = list(model.parameters())
    rng = random.Random(0)
    answers = set()
    for _ in range(300):
        for p in params:
            p.requires_grad_(False)
        for p in rng.sample(params, rng.choice((1, 2, 5))):
            p.requires_grad_(True)
        answer = model.text_tower_trainable()
        assert answer == by_names(model)
        answers.add(answer)
    assert answers == {True, False}


def test_a_trainable_text_side_gets_gradients_through_the_captions():
    model = classifier(tiny_clip())
    labels, templates = torch.tensor([0, 1]), torch.tensor([0, 2])
    frozen = model.image_captions(labels, templates)
    assert not frozen.requires_grad
    model.clip.text_projection.requires_grad_(True)
    text = model.image_captions(labels, templates)
    text.sum().backward()
    assert model.clip.text_projection.grad is not None
    torch.testing.assert_close(text.detach(), frozen)
