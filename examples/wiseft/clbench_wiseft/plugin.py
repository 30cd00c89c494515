"""WiSE-FT in the continual setting: after each session, the fine-tuned weights are mixed with
the zero-shot ones.

Wortsman, Ilharco, Kim, Li, Kornblith, Roelofs, Gontijo-Lopes, Hajishirzi, Farhadi, Namkoong
and Schmidt, "Robust fine-tuning of zero-shot models", CVPR 2022 (arXiv:2109.01903): the
weight-space ensemble theta = (1 - alpha) * theta_zero_shot + alpha * theta_fine_tuned keeps
much of the zero-shot model's robustness while gaining most of the fine-tuned model's accuracy
on the target; alpha = 0.5 is the paper's default mixing coefficient.

Here, per session: every parameter of the tuned tower(s) trains, as in clbench's `fft`; the
zero-shot weights are copied once, before the first session trains; after each session's
training (Avalanche's `after_training_exp`, which clbench runs before that session's
evaluation) the tuned tower's weights become the mix, and the next session fine-tunes from
there. alpha = 1 is `fft` exactly; alpha = 0 returns to the zero-shot model after every session.

The zero-shot copy is state the plugin carries from one session to the next outside the model's
weights, so it is returned by `resume_state` (saved in the run's checkpoint after every
session) and taken back by `load_resume_state`: a run resumed after a crash mixes with the
zero-shot weights, not with whatever the model held when it resumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from clbench.errors import UserError
from clbench.options import option
from clbench.strategies.base import StrategyPlugin, TowerConfig, set_trainable, tower_parameters


@dataclass
class WiSEFTConfig(TowerConfig):
    alpha: float = option(
        0.5, "mixing coefficient of the fine-tuned weights: after each session the tuned "
        "tower becomes (1 - alpha) * zero-shot + alpha * fine-tuned (1 = fft, 0 = zero-shot; "
        "0.5 is the WiSE-FT paper's default)", low=0.0, high=1.0)


class WiSEFTPlugin(StrategyPlugin):
    """WiSE-FT (Wortsman et al. 2022): full fine-tuning of the vision tower, then after every
    session the weights become (1 - alpha) * zero-shot + alpha * fine-tuned."""

    config_class = WiSEFTConfig

    def __init__(self, config: WiSEFTConfig | None = None):
        super().__init__(config)
        self.zero_shot: dict[str, torch.Tensor] | None = None  # copied before session 1
        self._drift: float | None = None

    # ---- what trains: fft's set (also called on a weightless copy, with strategy=None)
    def configure(self, classifier, strategy) -> None:
        set_trainable(tower_parameters(classifier.clip, self.config.towers))

    def session_facts(self) -> dict[str, Any]:
        """Stored with each session: the mixing coefficient, and how far the tuned tower is
        from the zero-shot weights after mixing (relative L2 distance)."""
        return {"alpha": self.config.alpha, "relative_drift": self._drift}

    # ---- resuming a run: the zero-shot copy goes into the checkpoint and comes back
    def resume_state(self) -> dict[str, Any]:
        return {} if self.zero_shot is None else {"zero_shot": self.zero_shot}

    def load_resume_state(self, state: dict[str, Any]) -> None:
        if "zero_shot" not in state:  # a checkpoint is written after a session: it has them
            raise UserError("this checkpoint holds no WiSE-FT zero-shot weights (written by a "
                            "clbench-wiseft that did not save them)",
                            hint="start the run again: mixing with the resumed weights "
                                 "instead would store other numbers")
        self.zero_shot = dict(state["zero_shot"])

    # ---- Avalanche callbacks
    def before_training_exp(self, strategy, **kwargs: Any) -> None:
        tower = tower_parameters(strategy.model.clip, self.config.towers)
        if self.zero_shot is None:  # the first session: the model is still the zero-shot one
            self.zero_shot = {name: p.detach().clone() for name, p in tower}
        else:  # taken back from a checkpoint (on the CPU): beside the weights it mixes with
            self.zero_shot = {name: self.zero_shot[name].to(p.device) for name, p in tower}
        super().before_training_exp(strategy, **kwargs)  # freezes everything, then configure

    @torch.no_grad()
    def after_training_exp(self, strategy, **kwargs: Any) -> None:
        alpha = self.config.alpha
        change, norm = 0.0, 0.0
        for name, p in tower_parameters(strategy.model.clip, self.config.towers):
            zero_shot = self.zero_shot[name]
            p.copy_((1.0 - alpha) * zero_shot + alpha * p)
            change += (p - zero_shot).double().pow(2).sum().item()
            norm += zero_shot.double().pow(2).sum().item()
        self._drift = round((change / norm) ** 0.5, 8) if norm else 0.0
        # with towers=both the text side changed: the evaluation that follows must re-encode it
        strategy.model.invalidate_text_cache()
