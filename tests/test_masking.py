"""masking.py: top-k masks, masked updates under Adam/AdamW, the gradient-scoring pass."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from tiny_models import TinyImages, classifier, tiny_clip
from torch import nn

from clbench.strategies.masking import (
    MaskedUpdate,
    accumulate_gradients,
    mask_size,
    session_score,
    topk_mask,
)


def tiny_classifier():
    return classifier(tiny_clip(), ["cat", "dog", "cow"], ["a photo of a {}.", "a {} here"])


def test_topk_mask_is_over_the_whole_matrix():
    score = torch.tensor([[9.0, 8.0, 7.0], [0.1, 0.2, 0.3]])
    mask = topk_mask(score, 3)
    assert mask.tolist() == [[True, True, True], [False, False, False]]  # not 1-2 per row
    g = torch.randn(40, 25, generator=torch.Generator().manual_seed(0))
    mask = topk_mask(g.square(), 100)
    assert mask.sum() == 100
    assert g.square()[mask].min() >= g.square()[~mask].max()
    assert mask_size(0.1, 1000) == 100 and mask_size(0.1, 1005) == 100  # floor
    assert mask_size(1e-9, 10) == 1 and mask_size(1.0, 10) == 10


@pytest.mark.parametrize("kept", [0.10, 0.05, 1e-6, 0.3])
def test_topk_mask_of_a_large_tensor_is_exactly_the_top_k(kept):
    """A fc1-sized score goes through candidates above a sampled threshold; the mask must be
    the exact top-k (distinct values: one answer), at LoRSU's 10%, SPU's 5%, one entry, and a
    density where the whole tensor is searched."""
    score = torch.rand(1536, 768, generator=torch.Generator().manual_seed(2))
    k = mask_size(kept, score.numel())
    mask = topk_mask(score, k)
    exact = torch.zeros(score.numel(), dtype=torch.bool)
    exact[torch.topk(score.reshape(-1), k).indices] = True
    assert torch.equal(mask, exact.view_as(score))


def test_topk_mask_searches_everything_when_the_sample_misleads():
    """Entries that the fixed sample draws made the largest: the threshold lands above most
    of the true top-k, too few candidates remain, and the whole tensor is searched."""
    from clbench.strategies import masking

    n = 1 << 20
    drawn = torch.randint(n, (masking._SAMPLE,), generator=torch.Generator().manual_seed(0))
    score = torch.rand(n, generator=torch.Generator().manual_seed(3))
    score[drawn] += 10.0
    k = 150_000  # more than the ~63k distinct drawn entries
    exact = torch.zeros(n, dtype=torch.bool)
    exact[torch.topk(score, k).indices] = True
    assert torch.equal(topk_mask(score, k), exact)


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_adam_momentum_and_weight_decay_never_move_frozen_entries(optimizer):
    torch.manual_seed(0)
    layer = nn.Linear(8, 6)
    frozen_tensor = nn.Parameter(torch.randn(4), requires_grad=False)
    make = torch.optim.Adam if optimizer == "adam" else torch.optim.AdamW
    opt = make([layer.weight, layer.bias], lr=0.1, weight_decay=0.1)
    x = torch.randn(5, 8)
    for _ in range(3):  # build momentum on every entry first
        opt.zero_grad()
        layer(x).square().sum().backward()
        opt.step()
    trainable = torch.zeros_like(layer.weight, dtype=torch.bool)
    trainable[::2, 1::3] = True
    masks = MaskedUpdate()
    masks.add(layer.weight, trainable)
    assert masks.trainable_entries() == int(trainable.sum())
    start, bias_start, other = (layer.weight.detach().clone(), layer.bias.detach().clone(),
                                frozen_tensor.detach().clone())

    def steps(restore: bool) -> None:
        for _ in range(4):
            opt.zero_grad()
            layer(x).square().sum().backward()
            masks.mask_gradients()
            assert torch.all(layer.weight.grad[~trainable] == 0)
            opt.step()
            if restore:
                masks.restore()

    steps(restore=True)
    assert torch.equal(layer.weight[~trainable], start[~trainable])  # bit-identical
    assert not torch.equal(layer.weight[trainable], start[trainable])  # the mask trained
    assert not torch.equal(layer.bias, bias_start)  # unmasked tensors train normally
    assert torch.equal(frozen_tensor, other)
    # the trap is real: without restoring, momentum / weight decay move zero-gradient entries
    steps(restore=False)
    assert not torch.equal(layer.weight[~trainable], start[~trainable])


def test_accumulate_gradients_is_the_mean_loss_gradient_and_leaves_no_trace():
    model = tiny_classifier()
    model.register_head("toy", ["cat", "dog", "cow"], ["a photo of a {}."])  # one template
    data = TinyImages(5, classes=3)
    strategy = SimpleNamespace(model=model, adapted_dataset=data, train_mb_size=2,
                               device=torch.device("cpu"))
    fc1 = model.clip.visual.transformer.resblocks[0].mlp.c_fc.weight
    wo = model.clip.visual.transformer.resblocks[1].attn.out_proj.weight
    model.eval()
    grads = accumulate_gradients(strategy, [fc1, wo])
    # no trace: flags, grads and mode as found
    assert not fc1.requires_grad and fc1.grad is None and wo.grad is None and not model.training
    # by hand: batches of 2, 2, 1 in dataset order, G = sum_b n_b g_b / N (one template: no RNG)
    expected = [torch.zeros_like(fc1), torch.zeros_like(wo)]
    fc1.requires_grad_(True)
    wo.requires_grad_(True)
    g = torch.Generator().manual_seed(0)
    for start in (0, 2, 4):
        idx = range(start, min(start + 2, 5))
        x = torch.stack([data[i][0] for i in idx])
        y = torch.tensor([data[i][1] for i in idx])
        loss = session_score(model, SimpleNamespace(), x, y, g)
        fc1_g, wo_g = torch.autograd.grad(loss, [fc1, wo])
        expected[0] += len(idx) * fc1_g / 5
        expected[1] += len(idx) * wo_g / 5
    torch.testing.assert_close(grads[0], expected[0])
    torch.testing.assert_close(grads[1], expected[1])
    assert grads[0].abs().sum() > 0
    # a sample cap uses only the first samples
    capped = accumulate_gradients(strategy, [fc1], max_samples=2)[0]
    assert not torch.allclose(capped, grads[0])


def test_output_norm_score_differs_from_the_loss():
    model = tiny_classifier()
    strategy = SimpleNamespace(model=model, adapted_dataset=TinyImages(4, classes=3),
                               train_mb_size=2)
    fc1 = model.clip.visual.transformer.resblocks[0].mlp.c_fc.weight
    loss_g = accumulate_gradients(strategy, [fc1], score="loss")[0]
    norm_g = accumulate_gradients(strategy, [fc1], score="output_norm")[0]
    assert norm_g.abs().sum() > 0 and not torch.allclose(loss_g, norm_g)
