"""LoRSU: Low-Rank Adaptation with Structured Updates (Panos et al. 2025, "Imperfect Vision
Encoders: Efficient and Robust Tuning for Vision-Language Models", section 3).

Per session, before training, the gradient G of the training loss (FLYP) is accumulated over the
session's data (all of it in few-shot runs; at most `score_samples` = 800 samples, the paper's
offline setting) for each block's q/k/v weights, Wo and fc1 weight. Then, per block:

1. fc1: the mask M keeps the top S = max(1, floor(sparsity * numel)) entries of G^2 over the whole
   matrix; training uses M * grad (eq. 9) and the entries outside M stay bit-identical
   (`masking.MaskedUpdate`, which also undoes Adam momentum / AdamW weight decay on them).
2. heads: s_i = sum(G_q^(i)^2 + G_k^(i)^2 + G_v^(i)^2 + G_o^(i)^2) (eq. 5), Wo's slice of head i
   being the columns i*Dh:(i+1)*Dh of the (D x H*Dh) out-projection weight. The top-k heads of the
   block get LoRA updates on their q, k and v rows; every other head's rows and Wo stay frozen.
   Default (`lora_layout=masked_fused`): one rank-r factor pair on the whole fused (3D x D)
   in-projection whose update is multiplied by a row mask of the chosen heads: the text after
   eq. 8 ("a binary mask on the gradient vector with respect to all parameters of all attention
   heads"), and the layout whose count is the paper's Table 9.
3. an unmasked rank-r LoRA on the image projection (`proj_lora`, in Table 9's count).
4. train; after the session the factors are merged into the weights, so the next session starts
   from a plain model and computes new masks and heads.

Paper defaults (appendix B): sparsity 0.05, rank 32, top-2 heads, vision tower. Trainable count
(`clbench params`, factors counted whole): 8.24 M = 2.71% of ViT-L/14 and 24.59 M = 2.43% of
EVA01-g-14, Table 9's 8.2 M (2.71%) and 24.6 M (2.43%).

Preset `lorsu-per-head`: the per-head reading of eqs. 6-8 (one rank-r pair per chosen
(head, q|k|v) row block, Dh x D each, no projection LoRA): 10.05 M = 3.31% of ViT-L/14, 2.84% of
EVA01-g-14, not Table 9's count; kept as the literal reading of the equations.
Preset `lorsu-official` (`aresPanos/LoRSU`, `src/clip_ft/train_utils.py`): head score from q, k,
v only; the masked fused layout and projection LoRA; fc1 biases and the whole q/k/v bias
trainable; rank 64, alpha 64, sparsity 0.1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from clbench.options import option
from clbench.strategies.config_base import TowerConfig
from clbench.strategies.declaration import Declaration, Preset, plugin_attributes


@dataclass
class LoRSUConfig(TowerConfig):
    sparsity: float = option(0.05, "fraction of each fc1 weight matrix that trains (paper: 0.05)",
                             low=0, low_open=True, high=1)
    rank: int = option(32, "rank r of the head adapters (paper: 32); at most min(head width, "
                       "model width) per head, checked when the model is known", low=1)
    alpha: float | None = option(None, "LoRA alpha; updates are scaled by alpha/rank (default: "
                                 "alpha = rank)", low=0, low_open=True)
    top_k_heads: int = option(2, "attention heads adapted per block (paper: 2); at most the "
                              "number of heads, checked when the model is known", low=1)
    head_score: Literal["qkvo", "qkv"] = option(
        "qkvo", "head importance: qkvo = eq. 5 with Wo's columns (paper), qkv = without Wo "
        "(official code)")
    lora_layout: Literal["per_head", "masked_fused"] = option(
        "masked_fused", "masked_fused = one factor pair on the fused in-projection, its update "
        "masked to the chosen heads' rows (the text after eq. 8, Table 9's count, official "
        "code); per_head = one factor pair per chosen (head, q|k|v) row block (eqs. 6-8 read "
        "per head)")
    train_biases: bool = option(False, "fc1 biases and the whole q/k/v bias train (official code)")
    proj_lora: bool = option(True, "an extra, unmasked LoRA on the image projection (in Table "
                             "9's count; official code)")
    score_samples: int = option(800, "at most this many samples of a session for the gradient "
                                "scores (paper: 800 offline; few-shot sessions are smaller, so "
                                "all their data); 0 = all", low=0)

    @property
    def scale_alpha(self) -> float:
        return float(self.rank) if self.alpha is None else self.alpha


_BLOCK = r"clip\.visual\.transformer\.resblocks\.\d+\."  # a block of the image tower

STRATEGIES = (
    Declaration("lorsu", LoRSUConfig, ".plugin:LoRSUPlugin",
                "LoRSU: top 5% of fc1 by squared gradient + one LoRA on the fused qkv masked to "
                "the top-2 heads' rows + a projection LoRA (Table 9's count)",
                # the projection LoRA is merged into visual.proj after each session (Table 9)
                may_change=(_BLOCK + r"attn\.in_proj_weight", _BLOCK + r"mlp\.c_fc\.weight",
                            r"clip\.visual\.proj"),
                presets=(
                    Preset("lorsu-official",
                           {"head_score": "qkv", "lora_layout": "masked_fused",
                            "train_biases": True, "proj_lora": True, "rank": 64, "alpha": 64.0,
                            "sparsity": 0.1, "top_k_heads": 2},
                           "LoRSU as the official code: q/k/v head score, one row-masked LoRA "
                           "on the fused in-projection, biases and a projection LoRA, rank 64",
                           may_change=(_BLOCK + r"attn\.in_proj_(weight|bias)",
                                       _BLOCK + r"mlp\.c_fc\.(weight|bias)",
                                       r"clip\.visual\.proj")),
                    Preset("lorsu-per-head", {"lora_layout": "per_head", "proj_lora": False},
                           "LoRSU eqs. 6-8 read per head: one LoRA pair per chosen (head, "
                           "q|k|v) row block, no projection LoRA (more than Table 9's count)",
                           may_change=(_BLOCK + r"attn\.in_proj_weight",
                                       _BLOCK + r"mlp\.c_fc\.weight")),
                )),
)

__getattr__ = plugin_attributes(__name__)
