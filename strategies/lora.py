"""LoRA, DoRA and their gated variants (the LoRSU paper's LoRA baseline; Selective LoRA gates).

* `lora` (Hu et al. 2021, arXiv:2106.09685): W' = W + (alpha/r) B A on q, k, v (row blocks of the
  fused in-projection, each with its own factors), out_proj, fc1 and fc2 of every block of the
  tuned tower(s). Defaults of the LoRSU paper's LoRA baseline (appendix B): rank 32, alpha = rank.
* `dora` (Liu et al. 2024, arXiv:2402.09353): weight-decomposed LoRA as in HF peft
  `LoraConfig(use_dora=True)`; on a fused in-projection each target's row block is decomposed
  separately.
* `gated-lora`, `gated-dora` (the Selective Low Rank Adaptation paper, section 3.2; TAPS,
  `MattWallingford/TAPS`): every adapter has a score s gating it with I_tau(s) (straight-through);
  the loss adds lam * penalty(s) averaged over the gated adapters, as the TAPS code does.
  Penalties (same paper, section 4.5): l1 |s|, l2 s^2, hinge max(0, s - tau).
  Scores train at their own rate (`score_lr`), as TAPS gives them a separate learning rate.

Adapters are weight parametrizations (`lora_layers.py`); they keep training across sessions
(no merge between sessions, as the papers use them) unless `merge_each_session` is set. The
target `qkv` (one factor pair on the whole fused in-projection, what HF peft can do on open_clip)
reproduces the LoRSU paper's Table 9 count when used with out_proj, fc1, fc2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from clbench.errors import ConfigError
from clbench.options import option
from clbench.strategies.base import StrategyPlugin, TowerConfig
from clbench.strategies.blocks import QKV, TARGETS, Slot, tower_blocks
from clbench.strategies.lora_layers import (
    LowRankDelta,
    WeightAdapters,
    adapter_state,
    adapters_of,
    attach,
    merge_adapters,
)

__all__ = ["LoRAConfig", "GatedLoRAConfig", "LoRAPlugin", "DoRAPlugin", "GatedLoRAPlugin",
           "GatedDoRAPlugin", "attach_adapters", "merge_adapters", "adapter_state",
           "adapters_of", "WeightAdapters", "VALID_TARGETS"]

VALID_TARGETS = (*TARGETS, "qkv")


@dataclass
class LoRAConfig(TowerConfig):
    rank: int = option(32, "rank r of every adapter (paper: 32); at most the smallest adapted "
                       "weight dimension", low=1)
    alpha: float | None = option(None, "LoRA alpha; the update is scaled by alpha/rank "
                                 "(default: alpha = rank)", low=0, low_open=True)
    targets: list[str] = option(list(TARGETS), "weights adapted in every block: any of q, k, v, "
                                "out_proj, fc1, fc2, or qkv (one adapter on the whole fused "
                                "in-projection instead of q, k, v)")
    merge_each_session: bool = option(False, "merge the adapters into the weights after every "
                                      "session and start the next one with fresh adapters")

    def validate(self) -> None:
        unknown = [t for t in self.targets if t not in VALID_TARGETS]
        if unknown:
            raise ConfigError(f"strategy.targets: unknown target(s) {', '.join(unknown)}; valid "
                              f"targets: {', '.join(VALID_TARGETS)}")
        if not self.targets:
            raise ConfigError("strategy.targets: empty; choose at least one of "
                              f"{', '.join(VALID_TARGETS)}")
        if len(set(self.targets)) != len(self.targets):
            raise ConfigError(f"strategy.targets: {self.targets} lists a target twice")
        if "qkv" in self.targets and set(QKV) & set(self.targets):
            raise ConfigError("strategy.targets: 'qkv' adapts the whole fused in-projection and "
                              "cannot be combined with q, k or v")

    @property
    def scale_alpha(self) -> float:
        return float(self.rank) if self.alpha is None else self.alpha


@dataclass
class GatedLoRAConfig(LoRAConfig):
    tau: float = option(0.1, "gate threshold: an adapter is active while its score s >= tau "
                        "(TAPS code: 0.1)", low=0, low_open=True)
    score_init: float = option(0.15, "initial score of every gate; >= tau so all adapters start "
                               "active (TAPS code: 0.15)")
    lam: float = option(1.0, "lambda, weight of the score penalty added to the loss (paper: 1 "
                        "for CLIP)", low=0)
    penalty: Literal["l1", "l2", "hinge"] = option(
        "l1", "score penalty: l1 |s| (paper), l2 s^2, hinge max(0, s - tau)")
    score_lr: float = option(
        1e-3, "learning rate of the gate scores (TAPS trains scores with their own rate). Scores "
        "start score_init - tau = 0.05 above the threshold and Adam moves them about score_lr per "
        "step, so the shared weight lr (1e-5..1e-4) would never close a gate within a session",
        low=0, low_open=True)

    def validate(self) -> None:
        super().validate()
        if self.tau > self.score_init:
            raise ConfigError(
                f"strategy.tau: {self.tau!r} is above strategy.score_init={self.score_init!r}: "
                f"no gate able to open; allowed range (0, {self.score_init!r}]")


def _slots(view, target: str) -> list[Slot]:
    if target != "qkv":
        return view.slots[target]
    if view.qkv_owner is None:
        raise ConfigError("strategy.targets: 'qkv' needs a fused in-projection; this model has "
                          "separate q/k/v projections (use q, k, v)")
    first, last = view.slots["q"][0], view.slots["v"][0]
    return [Slot(first.owner, first.attr, slice(first.rows.start, last.rows.stop))]


def attach_adapters(clip: torch.nn.Module, config: LoRAConfig, *, dora: bool = False,
                    gated: bool = False) -> list[LowRankDelta]:
    """Parametrize the configured targets of every block of the tuned tower(s).

    The rank is checked against the smallest adapted weight dimension here, where the model is
    known (ConfigError naming strategy.rank and the allowed range).
    """
    groups: dict[tuple[int, str], tuple[torch.nn.Module, dict[str, Slot]]] = {}
    for _, view in tower_blocks(clip, config.towers):
        for target in config.targets:
            for slot in _slots(view, target):
                key = (id(slot.owner), slot.attr)
                groups.setdefault(key, (slot.owner, {}))[1][target] = slot
    if not groups:
        raise ConfigError("strategy.targets: the model has no blocks to adapt")
    width = min(min(s.in_features, s.out_features) for _, slots in groups.values()
                for s in slots.values())
    if config.rank > width:
        raise ConfigError(f"strategy.rank: {config.rank} is outside the allowed range [1, {width}] "
                          f"(the smallest adapted weight dimension of this model is {width})")
    gate = (config.tau, config.score_init) if gated else None
    adapters: list[LowRankDelta] = []
    for owner, slots in groups.values():
        first = next(iter(slots.values()))
        made = {t: LowRankDelta(first.tensor[s.rows], s.rows, config.rank, config.scale_alpha,
                                dora=dora, gate=gate) for t, s in slots.items()}
        attach(owner, first.attr, made)
        adapters.extend(made.values())
    return adapters


class LoRAPlugin(StrategyPlugin):
    config_class = LoRAConfig
    dora = False
    gated = False

    def __init__(self, config: LoRAConfig | None = None):
        super().__init__(config)
        self.adapters: list[LowRankDelta] = []
        self._facts: dict[str, Any] = {}

    def configure(self, classifier, strategy) -> None:
        if not self.adapters:  # first session, or the previous one merged its adapters
            self.adapters = attach_adapters(classifier.clip, self.config, dora=self.dora,
                                            gated=self.gated)
        for adapter in self.adapters:
            for p in adapter.parameters():
                p.requires_grad_(True)
        self._facts = self._current_facts()

    def prepare_for_load(self, classifier, state) -> None:
        if not self.adapters and any(".parametrizations." in k for k in state):
            self.adapters = attach_adapters(classifier.clip, self.config, dora=self.dora,
                                            gated=self.gated)

    def _current_facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {
            "adapted_blocks": len(self.adapters), "rank": self.config.rank,
            "adapter_params": sum(p.numel() for a in self.adapters for p in a.parameters())}
        if self.gated and self.adapters and not self.adapters[0].score.is_meta:
            active = sum(a.active for a in self.adapters)
            facts["active_blocks"] = active
            facts["active_fraction"] = active / len(self.adapters)
        return facts

    def after_training_exp(self, strategy, **kwargs) -> None:
        self._facts = self._current_facts()
        if self.config.merge_each_session:
            merge_adapters(strategy.model.clip)
            self.adapters = []

    def session_facts(self) -> dict[str, Any]:
        return self._current_facts() if self.adapters else dict(self._facts)


class DoRAPlugin(LoRAPlugin):
    dora = True


class GatedLoRAPlugin(LoRAPlugin):
    config_class = GatedLoRAConfig
    gated = True

    def penalty(self) -> torch.Tensor:
        """lam * mean penalty over the gated adapters (TAPS averages over its gated layers)."""
        scores = torch.stack([a.score for a in self.adapters])
        if self.config.penalty == "l1":
            values = scores.abs()
        elif self.config.penalty == "l2":
            values = scores.pow(2)
        else:
            values = torch.clamp(scores - self.config.tau, min=0)
        return self.config.lam * values.mean()

    def optimizer_groups(self) -> list[dict[str, Any]]:
        return [{"params": [a.score for a in self.adapters], "lr": self.config.score_lr,
                 "weight_decay": 0.0}] if self.adapters else []

    def before_backward(self, strategy, **kwargs) -> None:
        if self.adapters and self.config.lam > 0:
            strategy.loss = strategy.loss + self.penalty().to(strategy.loss.device)


class GatedDoRAPlugin(GatedLoRAPlugin):
    dora = True

