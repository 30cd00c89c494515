"""LLU invariants: local updates only near stored data, encoders untouched, bounded memory."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tiny_models import TinyImages, classifier, snapshot, tiny_clip, train_stream, trainer

from clbench.strategies import registry
from clbench.strategies.llu import LocalAffine, cluster_memory


def tiny_classifier():
    return classifier(tiny_clip(text_layers=2), ["cat", "dog", "bird"],
                      ["a photo of a {}.", "a {}."])


def test_far_from_memory_equals_zero_shot():
    adapter = LocalAffine(8, beta=0.5, gamma=20.0)
    with torch.no_grad():
        adapter.weight.add_(torch.randn(8, 8))
        adapter.bias.add_(torch.randn(8))
    adapter.memory = F.normalize(torch.eye(8)[:1], dim=-1)  # one stored point: e1
    near, far = torch.eye(8)[:1], -torch.eye(8)[:1]  # cosine 1 and -1 to the memory
    assert not torch.allclose(adapter(near), near)  # updated where data was seen
    assert torch.allclose(adapter(far), far, atol=1e-15)  # exp(-40) * beta ~ 0: zero-shot kept
    empty = LocalAffine(8, 0.5, 20.0)
    with torch.no_grad():
        empty.weight.mul_(3)
    assert torch.equal(empty(near), near)  # no memory yet: exactly the zero-shot embedding


def test_clustering_bounds_memory_with_normalised_means():
    points = F.normalize(torch.randn(50, 6, generator=torch.Generator().manual_seed(1)), dim=-1)
    reduced = cluster_memory(points, 10)
    assert reduced.shape == (10, 6)
    assert torch.allclose(reduced.norm(dim=-1), torch.ones(10), atol=1e-5)
    assert torch.equal(cluster_memory(points[:5], 10), points[:5])


def test_session_trains_adapters_only():
    model = tiny_classifier()
    plugin = registry.create("llu", {"clusters": 8, "lam": 1.0, "lr": 5e-2})
    before = snapshot(model.clip)
    loop = trainer(model, [plugin], epochs=2, batch_size=4, lr=1e-2)
    assert loop.training.loss == "ce"  # LLU prescribes cross-entropy (eq. 3)
    loop.train(train_stream(TinyImages(12, 0, classes=3))[0], eval_streams=[])
    after = snapshot(model.clip)
    assert all(torch.equal(before[k], after[k]) for k in before)  # encoders frozen
    image_adapter = model.embedding_adapters["image"]
    assert len(image_adapter.memory) == 8  # 12 images clustered to 8
    assert not torch.equal(image_adapter.weight, torch.eye(len(image_adapter.weight)))
    assert plugin.session_facts() == {"memory_image": 8, "memory_text": 6}
    # the adapters train at LLU's own rate (the paper's CoOp lr), not the encoder lr
    adapter_ids = {id(p) for m in model.embedding_adapters.values() for p in m.parameters()}
    (group,) = loop.optimizer.param_groups
    assert group["initial_lr"] == 5e-2 and {id(p) for p in group["params"]} == adapter_ids


def trained_adapters(name: str, **params):
    """LLU's image and text adapters after one session of 24 steps at the paper's lam 1e3."""
    model = tiny_classifier()
    plugin = registry.create(name, {"clusters": 8, **params})
    loop = trainer(model, [plugin], epochs=8, batch_size=4, lr=1e-2)
    loop.train(train_stream(TinyImages(12, 0, classes=3))[0], eval_streams=[])
    return model.embedding_adapters, plugin.config.lr


def deviation(adapter: LocalAffine) -> float:
    return (adapter.weight - torch.eye(len(adapter.weight))).abs().max().item()


@pytest.mark.slow
def test_default_penalty_lets_the_adapters_move_and_the_literal_one_pins_them():
    """Eq. 6 unsquared at lam 1e3 (`llu-literal`) pulls with norm 1e3 towards the identity: W
    stays within one Adam step (lr) of I. The default's mean squared deviation lets the
    cross-entropy move W steadily (24 steps of at most lr each)."""
    moved, lr = trained_adapters("llu")
    pinned, _ = trained_adapters("llu-literal")
    for side in ("image", "text"):
        assert deviation(pinned[side]) < lr  # oscillates about I, within one step
        assert deviation(moved[side]) > 5 * lr  # moved several steps' worth
        assert deviation(moved[side]) > 10 * deviation(pinned[side])
    # far from the stored data the default still returns the zero-shot embedding
    far = -moved["image"].memory[:1]
    with torch.no_grad():
        assert torch.allclose(moved["image"](far), far, atol=1e-6)


def test_penalty_norms():
    adapter = LocalAffine(4, 0.5, 20.0)
    with torch.no_grad():
        adapter.weight.add_(torch.full((4, 4), 0.5))
        adapter.bias.fill_(1.0)
    # ||W - I||_F = 0.5 * 4 = 2, ||b|| = 2; squares 4 + 4 over 16 + 4 entries
    torch.testing.assert_close(adapter.penalty("frobenius"), torch.tensor(4.0))
    torch.testing.assert_close(adapter.penalty("squared"), torch.tensor(8.0))
    torch.testing.assert_close(adapter.penalty("mean_squared"), torch.tensor(8.0 / 20))
