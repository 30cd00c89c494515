"""One test matrix over every registered strategy (built-ins and presets), on a tiny CLIP.

For each: two sessions through clbench's training loop (forward, backward, optimizer steps),
then save/load, and the set of tensors that changed must equal the set `MAY_CHANGE` below allows
for it, the tensors its paper (or its module docstring in strategies/) says train (bit-for-bit
comparison against a copy taken before training).
"""

from __future__ import annotations

import io
import re

import pytest
import torch
from tiny_models import TinyImages, classifier, snapshot, train_stream, trainer

from clbench.models import ProxyTokenizer
from clbench.models import build_clip as build_proxy_clip
from clbench.strategies import registry

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


def clean(key: str) -> str:
    return key.replace(".parametrizations.", ".").replace(".original", "")


def test_every_registered_strategy_has_a_row():
    assert set(registry.available()) == set(MAY_CHANGE)


def new_classifier():
    # the proxy CLIP, not tiny_models.tiny_clip: presets at their defaults (rank 64) need its width
    return classifier(build_proxy_clip(), ["red star", "blue ring", "green heart", "pink cross"],
                      ["a photo of a {}.", "a {} in the scene."], ProxyTokenizer())


@pytest.mark.parametrize("name", sorted(MAY_CHANGE))
def test_strategy_matrix(name):
    torch.manual_seed(0)
    model = new_classifier()
    before = snapshot(model)
    plugin = registry.create(name)
    if plugin.needs_replay:  # replayed images of the same four classes (joint-replay)
        plugin.set_replay(TinyImages(labels=[0, 1, 2, 3], seed=4, uniform=True),
                          model.heads["toy"].class_names, model.heads["toy"].templates)
    loop = trainer(model, [plugin], epochs=2, batch_size=4, lr=1e-2)
    for experience in train_stream(TinyImages(labels=[0, 1] * 4, seed=1, uniform=True),
                                   TinyImages(labels=[2, 3] * 4, seed=2, uniform=True)):
        loop.train(experience, eval_streams=[])

    after = {clean(k): v for k, v in snapshot(model).items()}
    changed = {k for k, v in after.items() if k not in before or not torch.equal(before[k], v)}
    changed -= {k for k in changed if k.endswith("memory")}  # LLU's stored embeddings (buffer)
    allowed = [re.compile(p) for p in MAY_CHANGE[name]]
    outside = sorted(k for k in changed if not any(p.fullmatch(k) for p in allowed))
    assert not outside, f"{name} changed tensors its card keeps frozen: {outside[:5]}"
    for pattern in allowed:  # the card's trainable groups did train
        assert any(pattern.fullmatch(k) for k in changed), f"{name}: nothing matching {pattern}"

    # save the adapted classifier's state, load it into a freshly built one: same outputs
    images = TinyImages(labels=[0, 1, 2, 3], seed=3, uniform=True).x
    model.eval()
    with torch.no_grad():
        expected = model(images)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    torch.manual_seed(123)  # different random base weights: everything must come from the file
    fresh = new_classifier()
    registry.create(name).prepare_for_load(fresh, state)
    fresh.load_state_dict(state)  # strict: the structure matches exactly
    fresh.eval()
    with torch.no_grad():
        assert torch.allclose(fresh(images), expected, atol=1e-6)
