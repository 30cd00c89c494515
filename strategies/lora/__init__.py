"""LoRA, DoRA and their gated variants (the LoRSU paper's LoRA baseline; Selective LoRA gates).

* `lora` (Hu et al. 2021, arXiv:2106.09685): W' = W + (alpha/r) B A. Default layout = the count
  of the LoRSU paper's Table 9 ("Imperfect Vision Encoders", appendix): per block one factor
  pair on the whole fused q/k/v in-projection (`qkv`), out_proj, fc1 (`c_fc`) and fc2 (`c_proj`),
  plus one on the image projection (`proj_lora`); rank 32, alpha = rank (appendix B). That is
  12.64 M on ViT-L/14 (4.16% of its 304.0 M; 4.15% of the paper's 304.3 M ViT-L/14-336) and
  30.22 M = 2.98% on EVA01-g-14; Table 9 says 12.6 M (4.15%) and 30.2 M (2.98%). Without the
  projection it is 12.58 M (4.14%) and 30.15 M (printed 30.1 M, not the paper's 30.2 M), so the
  projection factor is what the paper's counts contain (`proj_lora: false` leaves it out).
  Preset `lora-qkv-split`: separate q, k, v factor pairs (row blocks of the fused in-projection)
  and no projection factor, 4.66% of ViT-L/14: section 5.1's "Low rank updates applied to all
  transformer layers" with q, k, v as separate layers, as the Selective LoRA paper adapts them
  (its 6 blocks per layer); the ungated twin of `gated-lora`.
* `dora` (Liu et al. 2024, arXiv:2402.09353): weight-decomposed LoRA as in HF peft
  `LoraConfig(use_dora=True)` on the same targets; on a fused in-projection each target's row
  block is decomposed separately. No paper of this benchmark gives its count.
* `gated-lora`, `gated-dora` (the Selective Low Rank Adaptation paper, section 3.2): every
  adapter has a score s gating it with I_tau(s) (eq. 3, straight-through). Blocks: the paper's
  section 4.4 adds "6 LoRA blocks per layer" (query, key, value, attention output, two MLP
  layers) and its 6.94% = 5 of 72 blocks of a 12-layer ViT-S confirms the count, so the gated
  default keeps separate q, k, v (no projection). The loss adds lam * sum_i penalty(s_i) over
  the gated blocks (eq. 4 sums |s_i|; section 4.5 gives l1 |s|, l2 s^2, hinge max(0, s - tau)).
  Preset `gated-lora-taps` (and `gated-dora-taps`): the penalty averaged over the blocks, as the
  TAPS code (`MattWallingford/TAPS`) does, i.e. 1/(number of gated blocks) as strong: 1/24 on
  the proxy (4 layers x 6 blocks), 1/144 on ViT-L/14. Scores train at their own rate
  (`score_lr`), as TAPS gives them a separate learning rate; a session whose steps cannot carry
  any score across tau at that rate (under the lr schedule, `gate_reach`) prints a warning at
  its start: its gates stay as they are (all open in a first session: gated = plain LoRA).

Adapters are weight parametrizations (`lora_layers.py`); they keep training across sessions
(no merge between sessions, as the papers use them) unless `merge_each_session` is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from clbench.errors import ConfigError
from clbench.options import option
from clbench.strategies.config_base import QKV, TARGETS, TowerConfig
from clbench.strategies.declaration import Declaration, Preset, plugin_attributes

VALID_TARGETS = (*TARGETS, "qkv")
# the LoRSU paper's Table 9 layout: one factor pair on the fused in-projection, Wo, fc1, fc2
PAPER_TARGETS = ("qkv", "out_proj", "fc1", "fc2")


@dataclass
class LoRAConfig(TowerConfig):
    rank: int = option(32, "rank r of every adapter (paper: 32); at most the smallest adapted "
                       "weight dimension", low=1)
    alpha: float | None = option(None, "LoRA alpha; the update is scaled by alpha/rank "
                                 "(default: alpha = rank)", low=0, low_open=True)
    targets: list[str] = option(list(PAPER_TARGETS), "weights adapted in every block: any of q, "
                                "k, v, out_proj, fc1, fc2, or qkv (one adapter on the whole fused "
                                "in-projection instead of q, k, v; default: qkv, out_proj, fc1, "
                                "fc2, the LoRSU paper's Table 9 count)")
    proj_lora: bool = option(True, "one more adapter on the image projection (in the LoRSU "
                             "paper's Table 9 count: 12.6 M on ViT-L/14, 30.2 M on EVA01-g-14)")
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
    targets: list[str] = option(list(TARGETS), "weights adapted (and gated) in every block: any "
                                "of q, k, v, out_proj, fc1, fc2 or qkv (default: the Selective "
                                "LoRA paper's 6 blocks per layer, section 4.4)")
    proj_lora: bool = option(False, "one more gated adapter on the image projection (not in the "
                             "Selective LoRA paper)")
    tau: float = option(0.1, "gate threshold: an adapter is active while its score s >= tau "
                        "(TAPS code: 0.1)", low=0, low_open=True)
    score_init: float = option(0.15, "initial score of every gate; >= tau so all adapters start "
                               "active (TAPS code: 0.15)")
    lam: float = option(1.0, "lambda, weight of the score penalty added to the loss (paper: 1 "
                        "for CLIP)", low=0)
    penalty_reduction: Literal["sum", "mean"] = option(
        "sum", "sum = lam * sum of the penalty over the gated blocks (eq. 4 of the Selective LoRA "
        "paper); mean = averaged over them, as the TAPS code does (1/blocks as strong)")
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


_ADAPTERS = (r".*\.adapters?\..*",)  # every factor (and gate score, DoRA magnitude) trains
_SPLIT = {"targets": ["q", "k", "v", "out_proj", "fc1", "fc2"], "proj_lora": False}
_TAPS = {"penalty_reduction": "mean"}
_TAPS_SUMMARY = ("with the score penalty averaged over the blocks, as the TAPS code (1/blocks of "
                "eq. 4's sum)")


STRATEGIES = (
    Declaration("lora", LoRAConfig, ".plugin:LoRAPlugin",
                "LoRA on the fused qkv, out_proj, fc1, fc2 of every block and the image "
                "projection (rank 32; the LoRSU paper's Table 9 count)", may_change=_ADAPTERS,
                presets=(Preset("lora-qkv-split", _SPLIT,
                                "LoRA with separate q, k, v factors, no projection LoRA (the "
                                "Selective LoRA paper's 6 blocks per layer; more than Table 9's "
                                "LoRA count)"),)),
    Declaration("dora", LoRAConfig, ".plugin:DoRAPlugin",
                "DoRA: weight-decomposed LoRA (magnitude and direction) on the same targets",
                may_change=_ADAPTERS,
                presets=(Preset("dora-qkv-split", _SPLIT,
                                "DoRA on the targets of lora-qkv-split (those of gated-dora, "
                                "ungated)"),)),
    Declaration("gated-lora", GatedLoRAConfig, ".plugin:GatedLoRAPlugin",
                "LoRA on q, k, v, out_proj, fc1, fc2 gated by learned scores, L1 penalty summed "
                "over blocks (Selective LoRA eq. 4)", may_change=_ADAPTERS,
                presets=(Preset("gated-lora-taps", _TAPS, f"gated LoRA {_TAPS_SUMMARY}"),)),
    Declaration("gated-dora", GatedLoRAConfig, ".plugin:GatedDoRAPlugin",
                "DoRA blocks gated by learned scores, L1 penalty summed over blocks (Selective "
                "LoRA eq. 4)", may_change=_ADAPTERS,
                presets=(Preset("gated-dora-taps", _TAPS, f"gated DoRA {_TAPS_SUMMARY}"),)),
)

__getattr__ = plugin_attributes(__name__)
