"""LoRA, DoRA and their gated variants: the plugins and the adapters' attachment (the methods:
this package's docstring)."""

from __future__ import annotations

import sys
from typing import Any

import torch

from clbench.errors import ConfigError
from clbench.schedules import warmup_cosine
from clbench.strategies.base import StrategyPlugin
from clbench.strategies.blocks import Slot, image_projection, tower_blocks
from clbench.strategies.lora import PAPER_TARGETS, VALID_TARGETS, GatedLoRAConfig, LoRAConfig
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
           "adapters_of", "WeightAdapters", "VALID_TARGETS", "PAPER_TARGETS", "gate_reach",
           "session_steps"]


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
    if config.proj_lora:
        owner, attr = image_projection(clip, "strategy.proj_lora")
        weight = getattr(owner, attr)
        groups[(id(owner), attr)] = (owner, {"proj": Slot(owner, attr,
                                                          slice(0, weight.shape[0]))})
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


def gate_reach(strategy, score_lr: float) -> tuple[int, float] | None:
    """(steps, how far a gate score can move) in the session about to train, or None when the
    loop does not say. Adam (and AdamW) move a parameter by about its rate per step (exactly that
    under a constant-sign gradient, such as the penalty's alone), scaled by the learning-rate
    schedule, which the training loop applies to the scores' group too: the reach is score_lr
    times the sum of the schedule's factors (`clbench.schedules.warmup_cosine` as the loop builds
    it from `strategy.training`; a constant rate when the loop has no such config). SGD's step
    depends on the gradient's size: no reach is claimed."""
    steps = session_steps(strategy)
    training = getattr(strategy, "training", None)
    if steps is None or getattr(training, "optimizer", "adam") not in ("adam", "adamw"):
        return None
    if training is None:
        weight = float(steps)
    else:
        factor = warmup_cosine(steps, int(round(training.warmup * steps)),
                               training.scheduler == "cosine")
        weight = sum(factor(i) for i in range(steps))
    return steps, score_lr * weight


class LoRAPlugin(StrategyPlugin):
    config_class = LoRAConfig
    dora = False
    gated = False
    # its adapters are parametrizations of the model (re-created by `prepare_for_load`) or,
    # with merge_each_session, merged into the weights
    stateless_between_sessions = True

    @property
    def replaces_trainable_tensors(self) -> bool:
        return bool(self.config.merge_each_session)

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
    stateless_between_sessions = True  # as LoRA


def session_steps(strategy) -> int | None:
    """Optimizer steps of the session about to train (epochs x batches), when the training loop
    says (Avalanche builds the session's dataloader before the plugins configure)."""
    loader = getattr(strategy, "dataloader", None)
    epochs = getattr(strategy, "train_epochs", None)
    try:
        return int(epochs) * len(loader) if loader is not None and epochs else None
    except TypeError:  # a loader without a length
        return None


class GatedLoRAPlugin(LoRAPlugin):
    config_class = GatedLoRAConfig
    gated = True
    stateless_between_sessions = True  # as LoRA; the gate scores are in the model

    def configure(self, classifier, strategy) -> None:
        super().configure(classifier, strategy)
        reach = gate_reach(strategy, self.config.score_lr)
        if reach is None or not self.adapters:
            return
        steps, distance = reach
        cfg = self.config
        scores = [float(a.score.detach()) for a in self.adapters]
        gap = min(abs(s - cfg.tau) for s in scores)  # the score nearest to the threshold
        if distance < gap - 1e-6:  # scores are float32: 0.15 - 0.1 is 0.05 + 6e-9
            state = ("all open: the session trains plain LoRA" if all(s >= cfg.tau for s in scores)
                     else "each stays open or closed")
            print(f"warning: gated adapters: in this session's {steps} optimizer steps a gate "
                  f"score moves at most about {distance:.3g} (score_lr={cfg.score_lr:g} under "
                  f"the lr schedule), less than the {gap:.3g} between the nearest score and "
                  f"tau={cfg.tau:g}: no gate can open or close ({state}); strategy.score_lr >= "
                  f"{cfg.score_lr * gap / distance:.3g} lets them move", file=sys.stderr)

    def penalty(self) -> torch.Tensor:
        """lam * the penalty summed over the gated adapters (eq. 4), or averaged over them
        (`penalty_reduction=mean`, the TAPS code)."""
        scores = torch.stack([a.score for a in self.adapters])
        if self.config.penalty == "l1":
            values = scores.abs()
        elif self.config.penalty == "l2":
            values = scores.pow(2)
        else:
            values = torch.clamp(scores - self.config.tau, min=0)
        reduced = values.sum() if self.config.penalty_reduction == "sum" else values.mean()
        return self.config.lam * reduced

    def optimizer_groups(self) -> list[dict[str, Any]]:
        return [{"params": [a.score for a in self.adapters], "lr": self.config.score_lr,
                 "weight_decay": 0.0}] if self.adapters else []

    def before_backward(self, strategy, **kwargs) -> None:
        if self.adapters and self.config.lam > 0:
            strategy.loss = strategy.loss + self.penalty().to(strategy.loss.device)


class GatedDoRAPlugin(GatedLoRAPlugin):
    dora = True
    stateless_between_sessions = True  # as gated LoRA

