"""SPU's plugin: the fc1 masks and their scoring (the method: this package's docstring)."""

from __future__ import annotations

from typing import Any

from torch import nn

from clbench.errors import ConfigError
from clbench.strategies.base import StrategyPlugin
from clbench.strategies.blocks import image_projection, tower_blocks
from clbench.strategies.masking import (
    MaskedUpdate,
    MaskedUpdatePlugin,
    accumulate_gradients,
    mask_size,
    topk_mask,
)
from clbench.strategies.spu import SPUConfig


def fc1_weights(clip: nn.Module, towers: str) -> list[tuple[str, nn.Parameter]]:
    """(label, weight) of every fc1 matrix of the tuned tower(s), in block order."""
    out = []
    for tower, view in tower_blocks(clip, towers):
        for i, slot in enumerate(view.slots["fc1"]):
            suffix = f".{i}" if len(view.slots["fc1"]) > 1 else ""
            out.append((f"{tower}.{view.index}{suffix}", slot.tensor))
    return out


def projection_parameters(clip: nn.Module) -> list[nn.Parameter]:
    """The image projection's tensors (a timm head's weight and bias)."""
    owner, attr = image_projection(clip, "strategy.train_projection")
    return [owner.proj] if attr == "proj" else list(owner.parameters())


def count_trainable(clip: nn.Module, config: SPUConfig) -> dict[str, int]:
    """Trainable entries of a session from the architecture alone (works on the meta device)."""
    fc1 = sum(mask_size(config.sparsity, w.numel()) for _, w in fc1_weights(clip, config.towers))
    biases = sum(b.numel() for b in _fc1_biases(clip, config.towers)) if config.train_biases \
        else 0
    proj = sum(p.numel() for p in projection_parameters(clip)) if config.train_projection else 0
    return {"fc1": fc1, "biases": biases, "projection": proj, "total": fc1 + biases + proj}


def _fc1_biases(clip: nn.Module, towers: str) -> list[nn.Parameter]:
    return [slot.owner.bias for _, view in tower_blocks(clip, towers)
            for slot in view.slots["fc1"] if getattr(slot.owner, "bias", None) is not None]


class SPUPlugin(MaskedUpdatePlugin, StrategyPlugin):
    config_class = SPUConfig
    stateless_between_sessions = True  # its mask is recomputed every session

    def __init__(self, config: SPUConfig | None = None):
        super().__init__(config)
        self.masks = MaskedUpdate()
        self._facts: dict[str, Any] = {}

    def configure(self, classifier, strategy) -> None:
        cfg = self.config
        clip = classifier.clip
        weights = fc1_weights(clip, cfg.towers)
        if not weights:
            raise ConfigError("strategy spu: the model has no fc1 layers to update")
        grads = accumulate_gradients(strategy, [w for _, w in weights], score=cfg.score,
                                     max_samples=cfg.score_samples or None,
                                     fraction=cfg.score_fraction)
        self.masks.clear()
        density = {}
        for (label, weight), grad in zip(weights, grads):
            mask = topk_mask(grad.abs(), mask_size(cfg.sparsity, weight.numel()))
            self.masks.add(weight, mask)
            density[label] = mask.sum().item() / mask.numel()
        extra = 0
        if cfg.train_biases:
            for bias in _fc1_biases(clip, cfg.towers):
                bias.requires_grad_(True)
                extra += bias.numel()
        if cfg.train_projection:
            for p in projection_parameters(clip):
                p.requires_grad_(True)
                extra += p.numel()
        self._facts = {
            "score": cfg.score,
            "mask_density": sum(density.values()) / len(density),
            "mask_density_per_layer": density,
            "trainable_entries": self.masks.trainable_entries() + extra,
        }

    def planned_trainable(self, clip: nn.Module) -> int:
        return count_trainable(clip, self.config)["total"]

    def after_training_exp(self, strategy, **kwargs) -> None:
        self.masks.clear()  # the next session computes a new mask

    def session_facts(self) -> dict[str, Any]:
        return dict(self._facts)
