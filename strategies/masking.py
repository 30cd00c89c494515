"""Shared machinery of the gradient-masking strategies (SPU, LoRSU).

* `accumulate_gradients`: the strategy's own pass over a session's data before training. It
  computes the training loss as the training loop's `criterion` does (FLYP with one random prompt
  template per image, or cross-entropy when `training.loss=ce`), or SPU's MAS-style output norm,
  and returns the gradient of the mean score over the samples used, G = sum_b n_b grad_b / N, for
  each chosen tensor. Requires-grad flags, the model's train/eval mode and the tensors' `.grad`
  are left as they were found (grads cleared). Prompt templates are drawn from a generator of its
  own, so the training loop's random stream of prompt templates is the same as without the pass.
* `topk_mask(score, k)`: the k largest entries of a whole matrix (not per row).
* `MaskedUpdate`: only the entries inside a mask train. The gradient outside the mask is zeroed
  after backward, and after every optimizer step the frozen entries are written back from a saved
  copy: Adam's momentum and AdamW's decoupled weight decay otherwise move entries whose gradient
  is zero (Adam's update divides the momentum by its running second moment, and AdamW decays every
  entry, Loshchilov & Hutter 2019; tests/test_masking.py shows it).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.data import DataLoader

Score = Literal["loss", "output_norm"]


# ---------------------------------------------------------------- the scoring pass


def _session_dataset(strategy: Any):
    dataset = getattr(strategy, "adapted_dataset", None)
    if dataset is None:
        dataset = strategy.experience.dataset
    return dataset


def session_score(classifier: nn.Module, strategy: Any, x: torch.Tensor, y: torch.Tensor,
                  generator: torch.Generator, score: Score = "loss") -> torch.Tensor:
    """The scalar whose gradient scores parameters on one batch.

    `loss`: the training loss exactly as the training loop computes it. `output_norm` (official SPU
    code): mean over images of the squared L2 norm of the image->text logits against the batch's
    captions.
    """
    features = classifier.encode_image(x)
    training = getattr(strategy, "training", None)
    if score == "loss" and training is not None and training.loss == "ce":
        return classifier.ce_loss(features, y)
    templates = classifier.random_templates(len(y), generator)
    if score == "loss":
        return classifier.flyp_loss(features, y, templates)
    text = classifier.image_captions(y, templates)
    logits = classifier.clip.logit_scale.exp() * features @ text.t()
    return logits.float().pow(2).sum(dim=1).mean()


def accumulate_gradients(strategy: Any, tensors: Sequence[torch.Tensor], *,
                         score: Score = "loss", max_samples: int | None = None,
                         fraction: float = 1.0, seed: int | None = None) -> list[torch.Tensor]:
    """The gradient of the mean score over (part of) the session's data, per tensor.

    `max_samples` caps the samples used (the LoRSU paper's 800 offline; None or 0 = all);
    `fraction` uses the first ceil(fraction * batches) batches (official SPU: at least 25%).
    Batches are those of the run's batch size, in dataset order.
    """
    classifier = strategy.model
    device = getattr(strategy, "device", torch.device("cpu"))
    dataset = _session_dataset(strategy)
    loader = DataLoader(dataset, batch_size=getattr(strategy, "train_mb_size", 8) or 8,
                        shuffle=False, collate_fn=getattr(dataset, "collate_fn", None))
    max_batches = max(1, math.ceil(fraction * len(loader)))
    if seed is None:
        base = getattr(strategy, "template_generator", None)
        seed = (base.initial_seed() if base is not None else 0) + 7919
    generator = torch.Generator().manual_seed(seed)
    use_amp = bool(getattr(strategy, "use_amp", False))
    # fp16 without a scaler would flush small gradients to zero: scale by a constant
    loss_scale = 2.0 ** 12 if use_amp and strategy.amp_dtype == torch.float16 else 1.0

    flags = [t.requires_grad for t in tensors]
    saved_grads = [t.grad for t in tensors]
    was_training = classifier.training
    totals = [torch.zeros_like(t, dtype=torch.float32) for t in tensors]
    used = 0
    try:
        classifier.train()
        for t in tensors:
            t.requires_grad_(True)
            t.grad = None
        for index, batch in enumerate(loader):
            if index >= max_batches or (max_samples and used >= max_samples):
                break
            x, y = batch[0], batch[1]
            if max_samples:
                x, y = x[:max_samples - used], y[:max_samples - used]
            x, y = x.to(device), torch.as_tensor(y).to(device)
            with strategy.autocast() if use_amp else contextlib.nullcontext():
                value = session_score(classifier, strategy, x, y, generator, score)
            (value * loss_scale).backward()
            for total, t in zip(totals, tensors):
                if t.grad is not None:
                    total.add_(t.grad.float(), alpha=len(y) / loss_scale)
                    t.grad = None
            used += len(y)
    finally:
        for t, flag, grad in zip(tensors, flags, saved_grads):
            t.requires_grad_(flag)
            t.grad = grad
        classifier.train(was_training)
    if used == 0:
        raise ValueError("the session has no training data to score parameters on")
    return [total.div_(used) for total in totals]


# ---------------------------------------------------------------- masks


def topk_mask(score: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the k largest entries of `score` over the whole tensor (ties: any k)."""
    if not 0 <= k <= score.numel():
        raise ValueError(f"k={k} outside [0, {score.numel()}]")
    mask = torch.zeros(score.numel(), dtype=torch.bool, device=score.device)
    if k:
        mask[_topk_indices(score.detach().reshape(-1), k)] = True
    return mask.view_as(score)


_SAMPLE = 1 << 16  # entries drawn to place the candidates' threshold


def _topk_indices(flat: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k largest entries of a 1-D tensor, in any order.

    A large k over a large tensor (LoRSU's 10% and SPU's 5% of a fc1 matrix) is found 4x
    faster among candidates: the entries at or above a threshold placed, from a fixed random
    sample of 65,536, where about 1.25 k entries lie above it (the sample's quantile errs by
    1-2% of k there at 5-10%). The result is exact whenever at least k entries are candidates,
    which is checked; otherwise the whole tensor is searched.
    """
    n = flat.numel()
    if n < 8 * _SAMPLE or 3 * k > n:  # small, or most entries kept: nothing to prune
        return torch.topk(flat, k, sorted=False).indices
    generator = torch.Generator(device=flat.device).manual_seed(0)
    sample = flat[torch.randint(n, (_SAMPLE,), generator=generator, device=flat.device)]
    threshold = torch.kthvalue(sample, _SAMPLE - (5 * k * _SAMPLE) // (4 * n)).values
    candidates = (flat >= threshold).nonzero().squeeze(1)
    if len(candidates) < k:
        return torch.topk(flat, k, sorted=False).indices
    return candidates[torch.topk(flat[candidates], k, sorted=False).indices]


def mask_size(sparsity: float, numel: int) -> int:
    """Entries kept at a given density: floor(sparsity * numel), at least 1 (both official
    codes use int(numel * rate))."""
    return max(1, min(numel, int(sparsity * numel)))


class MaskedUpdate:
    """Entries outside each mask stay bit-identical through any optimizer step.

    `add(param, trainable)` makes `param` trainable (requires_grad) and remembers its frozen
    entries; call `mask_gradients()` after backward and `restore()` after the optimizer step.
    A whole copy of each tensor is kept, not only its frozen entries: 5-10% more memory for
    the masked tensors, but copying and restoring it whole is 100x and 2.5x faster than
    gathering and scattering the frozen entries (a 3072x768 fc1 on the CPU).
    """

    def __init__(self) -> None:
        self.entries: list[tuple[nn.Parameter, torch.Tensor, torch.Tensor]] = []

    def add(self, param: nn.Parameter, trainable: torch.Tensor) -> None:
        if trainable.shape != param.shape or trainable.dtype != torch.bool:
            raise ValueError("the mask must be a boolean tensor of the parameter's shape")
        frozen = ~trainable.to(param.device)
        self.entries.append((param, frozen, param.detach().clone()))
        param.requires_grad_(True)

    def clear(self) -> None:
        self.entries = []

    @property
    def params(self) -> list[nn.Parameter]:
        return [p for p, _, _ in self.entries]

    def frozen_entries(self) -> int:
        return sum(int(frozen.sum()) for _, frozen, _ in self.entries)

    def trainable_entries(self) -> int:
        return sum(p.numel() for p, _, _ in self.entries) - self.frozen_entries()

    @torch.no_grad()
    def mask_gradients(self) -> None:
        for param, frozen, _ in self.entries:
            if param.grad is not None:
                param.grad.masked_fill_(frozen, 0)

    @torch.no_grad()
    def restore(self) -> None:
        for param, frozen, saved in self.entries:
            param.copy_(torch.where(frozen, saved, param))


class MaskedUpdatePlugin:
    """Mixin for a strategy plugin holding `self.masks` (a MaskedUpdate): masks gradients after
    backward, restores frozen entries after the optimizer step, reports them as frozen."""

    masks: MaskedUpdate

    def frozen_entries(self) -> int:
        return self.masks.frozen_entries()

    def after_backward(self, strategy: Any, **kwargs: Any) -> None:
        self.masks.mask_gradients()

    def after_update(self, strategy: Any, **kwargs: Any) -> None:
        self.masks.restore()
