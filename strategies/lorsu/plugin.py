"""LoRSU's plugin: gradient scores, fc1 masks, head selection and the head LoRA (the method:
this package's docstring)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from clbench.errors import ConfigError
from clbench.strategies.base import StrategyPlugin
from clbench.strategies.blocks import QKV, BlockView, head_rows, image_projection, tower_blocks
from clbench.strategies.lora_layers import LowRankDelta, attach, merge_adapters
from clbench.strategies.lorsu import LoRSUConfig
from clbench.strategies.masking import (
    MaskedUpdate,
    MaskedUpdatePlugin,
    accumulate_gradients,
    mask_size,
    topk_mask,
)


class RowMaskedDelta(LowRankDelta):
    """LoRA on a row block whose update is zero outside `row_mask` (the official layout)."""

    def __init__(self, weight_rows: torch.Tensor, rows: slice, rank: int, alpha: float,
                 row_mask: torch.Tensor):
        super().__init__(weight_rows, rows, rank, alpha)
        self.register_buffer("row_mask", row_mask.to(weight_rows.dtype).unsqueeze(1))

    def delta(self) -> torch.Tensor:
        return super().delta() * self.row_mask


# ---------------------------------------------------------------- head scores (eq. 5)


def score_tensors(view: BlockView, head_score: str) -> list[torch.Tensor]:
    """The distinct weights whose gradient eq. 5 reads (fused or separate q/k/v, maybe Wo)."""
    tensors = []
    for part in QKV:
        t = view.slots[part][0].tensor
        if not any(t is u for u in tensors):
            tensors.append(t)
    if head_score == "qkvo":
        tensors.append(view.out_proj.weight)
    return tensors


def head_scores(view: BlockView, grads: dict[int, torch.Tensor], head_score: str = "qkvo"
                ) -> torch.Tensor:
    """s_i of every head of a block (float64); `grads` maps id(weight) -> its gradient G."""
    heads, dh = view.num_heads, view.head_dim
    scores = torch.zeros(heads, dtype=torch.float64)
    for part in QKV:
        slot = view.slots[part][0]
        start = head_rows(view, part, 0).start
        g = grads[id(slot.tensor)][start:start + heads * dh]
        scores += g.reshape(heads, dh, -1).square().sum(dim=(1, 2), dtype=torch.float64).cpu()
    if head_score == "qkvo":  # Wo's slice of head i: its columns (paper: rows of HDh x D)
        g = grads[id(view.out_proj.weight)]
        scores += g.reshape(g.shape[0], heads, dh).square().sum(dim=(0, 2),
                                                                dtype=torch.float64).cpu()
    return scores


def select_heads(scores: torch.Tensor, k: int) -> list[int]:
    """The top-k heads, sorted by index (ties broken towards the lower index)."""
    order = sorted(range(len(scores)), key=lambda h: (-float(scores[h]), h))
    return sorted(order[:k])


def count_trainable(clip: nn.Module, config: LoRSUConfig) -> dict[str, int]:
    """Trainable entries of a session, from the architecture alone (works on the meta device).

    fc1: S entries per matrix; adapters: every factor entry (per_head: top-k x 3 pairs of
    r x (Dh + D) per block; masked_fused: r x (3D + D) per block, counted whole as the official
    code's count does); biases and the projection LoRA when configured.
    """
    cfg = config
    views = [view for _, view in tower_blocks(clip, cfg.towers)]
    fc1 = sum(mask_size(cfg.sparsity, s.tensor.numel()) for v in views for s in v.slots["fc1"])
    adapters = 0
    for v in views:
        width = v.slots["q"][0].in_features
        if cfg.lora_layout == "per_head":
            adapters += cfg.top_k_heads * len(QKV) * cfg.rank * (v.head_dim + width)
        else:
            adapters += cfg.rank * (3 * v.num_heads * v.head_dim + width)
    biases = 0
    if cfg.train_biases:
        biases = sum(p.numel() for v in views for p in _qkv_biases(v)) + sum(
            s.owner.bias.numel() for v in views for s in v.slots["fc1"] if s.owner.bias is not None)
    proj = 0
    if cfg.proj_lora:
        owner, attr = image_projection(clip, "strategy.proj_lora")
        proj = cfg.rank * sum(getattr(owner, attr).shape)
    return {"fc1": fc1, "adapters": adapters + proj, "biases": biases,
            "total": fc1 + adapters + proj + biases}


# ---------------------------------------------------------------- the plugin


def _qkv_biases(view: BlockView) -> list[nn.Parameter]:
    attn = view.block.attn
    found = []
    for name in ("in_proj_bias", "q_bias", "v_bias"):
        p = getattr(attn, name, None)
        if isinstance(p, nn.Parameter):
            found.append(p)
    for name in ("qkv", "q_proj", "k_proj", "v_proj"):
        p = getattr(getattr(attn, name, None), "bias", None)
        if isinstance(p, nn.Parameter):
            found.append(p)
    return found


class LoRSUPlugin(MaskedUpdatePlugin, StrategyPlugin):
    config_class = LoRSUConfig
    # masks and chosen heads are recomputed every session; its adapters merge after each one
    stateless_between_sessions = True

    @property
    def replaces_trainable_tensors(self) -> bool:
        return True  # its LoRA factors merge after every session (Table 9's layout)

    def __init__(self, config: LoRSUConfig | None = None):
        super().__init__(config)
        self.masks = MaskedUpdate()
        self.adapters: list[LowRankDelta] = []
        self.heads: list[list[int]] = []
        self._facts: dict[str, Any] = {}

    # ---- checks that need the model
    def _check(self, clip: nn.Module, views: list[BlockView]) -> None:
        cfg = self.config
        if not views:
            raise ConfigError("strategy lorsu: the model has no transformer blocks to adapt")
        heads = min(v.num_heads for v in views)
        if cfg.top_k_heads > heads:
            raise ConfigError(f"strategy.top_k_heads: {cfg.top_k_heads} is outside the allowed "
                              f"range [1, {heads}] (this model's blocks have {heads} heads)")
        if cfg.lora_layout == "per_head":
            width = min(min(v.head_dim, v.slots["q"][0].in_features) for v in views)
            what = "a head's q/k/v row block is head_dim x width"
        else:
            if any(v.qkv_owner is None for v in views):
                raise ConfigError("strategy.lora_layout: masked_fused needs a fused q/k/v "
                                  "in-projection; this model has separate q/k/v (use per_head)")
            width = min(v.slots["q"][0].in_features for v in views)
            what = "the fused in-projection is 3D x D"
        if cfg.proj_lora:
            owner, attr = image_projection(clip, "strategy.proj_lora")
            width = min(width, *getattr(owner, attr).shape)
            what += "; the projection limits it too"
        if cfg.rank > width:
            raise ConfigError(f"strategy.rank: {cfg.rank} is outside the allowed range "
                              f"[1, {width}] ({what})")

    def configure(self, classifier, strategy) -> None:
        cfg = self.config
        clip = classifier.clip
        if self.adapters:  # a session ended without after_training_exp: merge what is left
            merge_adapters(clip)
            self.adapters = []
        views = [view for _, view in tower_blocks(clip, cfg.towers)]
        self._check(clip, views)

        # one gradient pass for every weight any block reads
        per_view = [(score_tensors(v, cfg.head_score), [s.tensor for s in v.slots["fc1"]])
                    for v in views]
        tensors: list[torch.Tensor] = []
        for attn_tensors, fc1s in per_view:
            for t in (*attn_tensors, *fc1s):
                if not any(t is u for u in tensors):
                    tensors.append(t)
        grads = dict(zip(map(id, tensors), accumulate_gradients(
            strategy, tensors, max_samples=cfg.score_samples or None)))

        self.masks.clear()
        self.heads, densities = [], []
        alpha = cfg.scale_alpha
        for view, (_, fc1s) in zip(views, per_view):
            for weight in fc1s:  # 1. fc1: top-S of G^2 over the whole matrix
                mask = topk_mask(grads[id(weight)].square(), mask_size(cfg.sparsity,
                                                                       weight.numel()))
                self.masks.add(weight, mask)
                densities.append(mask.sum().item() / mask.numel())
            chosen = select_heads(head_scores(view, grads, cfg.head_score), cfg.top_k_heads)
            self.heads.append(chosen)
            self.adapters += self._attach_heads(view, chosen, alpha)  # 2. heads
            if cfg.train_biases:
                for p in _qkv_biases(view) + [s.owner.bias for s in view.slots["fc1"]
                                              if s.owner.bias is not None]:
                    p.requires_grad_(True)
        if cfg.proj_lora:
            owner, attr = image_projection(clip, "strategy.proj_lora")
            weight = getattr(owner, attr)
            proj = LowRankDelta(weight, slice(0, weight.shape[0]), cfg.rank, alpha)
            attach(owner, attr, {"proj": proj})
            self.adapters.append(proj)
        for adapter in self.adapters:
            adapter.lora_A.requires_grad_(True)
            adapter.lora_B.requires_grad_(True)
        adapter_params = sum(a.lora_A.numel() + a.lora_B.numel() for a in self.adapters)
        bias_params = sum(p.numel() for p in clip.parameters()
                          if p.requires_grad and p.dim() == 1)
        self._facts = {
            "chosen_heads": [list(h) for h in self.heads],
            "fc1_mask_density": sum(densities) / len(densities),
            "fc1_trainable_entries": self.masks.trainable_entries(),
            "adapter_params": adapter_params,
            "trainable_params": self.masks.trainable_entries() + adapter_params + bias_params,
        }

    def _attach_heads(self, view: BlockView, chosen: list[int], alpha: float
                      ) -> list[LowRankDelta]:
        cfg = self.config
        if cfg.lora_layout == "masked_fused":
            q, v = view.slots["q"][0], view.slots["v"][0]
            rows = slice(q.rows.start, v.rows.stop)
            row_mask = torch.zeros(rows.stop - rows.start, dtype=torch.bool)
            for part in QKV:
                for h in chosen:
                    r = head_rows(view, part, h)
                    row_mask[r.start - rows.start:r.stop - rows.start] = True
            weight = q.tensor
            adapter = RowMaskedDelta(weight[rows], rows, cfg.rank, alpha,
                                     row_mask.to(weight.device))
            attach(q.owner, q.attr, {"qkv": adapter})
            return [adapter]
        groups: dict[int, tuple[nn.Module, str, dict[str, LowRankDelta]]] = {}
        for part in QKV:
            slot = view.slots[part][0]
            for h in chosen:
                rows = head_rows(view, part, h)
                adapter = LowRankDelta(slot.tensor[rows], rows, cfg.rank, alpha)
                groups.setdefault(id(slot.tensor), (slot.owner, slot.attr, {}))[2][
                    f"{part}{h}"] = adapter
        made = []
        for owner, attr, adapters in groups.values():
            attach(owner, attr, adapters)
            made += adapters.values()
        return made

    # ---- the batch loop and the end of a session
    def planned_trainable(self, clip: nn.Module) -> int:
        self._check(clip, [view for _, view in tower_blocks(clip, self.config.towers)])
        return count_trainable(clip, self.config)["total"]

    def after_training_exp(self, strategy, **kwargs) -> None:
        merge_adapters(strategy.model.clip)  # 3. the next session starts from a plain model
        self.adapters = []
        self.masks.clear()

    def session_facts(self) -> dict[str, Any]:
        return dict(self._facts)
