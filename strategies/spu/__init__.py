"""SPU: Selective Parameter Update (Zhang et al., CVPR 2024), the LoRSU paper's SPU baseline.

Per session, before training, the gradient of a score is accumulated over the session's data for
the fc1 weight of every block of the tuned tower(s) (`mlp.c_fc` in open_clip, `mlp.fc1` in timm;
SwiGLU's `fc1_g` and `fc1_x` each count as one matrix). The mask of each matrix is its top
k = max(1, floor(sparsity * numel)) entries of |G| over the whole matrix (not per row), as
`int(numel * rate)` in the official code. Only those entries train; every other entry and every
other tensor stays bit-identical (`masking.MaskedUpdate`: masked gradients plus restoring the
frozen entries after each step, so Adam momentum and AdamW weight decay cannot move them). The
mask is recomputed each session and replaces the previous one.

Defaults (as the LoRSU paper runs SPU): score = the training loss (FLYP), vision tower, sparsity
10%, up to 800 samples for scoring (few-shot sessions are smaller: all their data).
Preset `spu-official` (`wx-zhang/spu`, `trainer/spu.py`): score = MAS-style output norm (mean
squared L2 norm of the image->text logits), both towers, fc1 biases and the image projection
fully trainable. The official code scores on at least 25% of the batches; the preset uses all of
them (`score_fraction=1`, a superset, and the simpler choice for few-shot sessions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from clbench.options import option
from clbench.strategies.config_base import TowerConfig
from clbench.strategies.declaration import Declaration, Preset, plugin_attributes


@dataclass
class SPUConfig(TowerConfig):
    sparsity: float = option(0.10, "fraction of each fc1 weight matrix that trains (paper: 0.10)",
                             low=0, low_open=True, high=1)
    score: Literal["loss", "output_norm"] = option(
        "loss", "what the mask's gradient is taken of: loss = the training loss (LoRSU paper's "
        "SPU), output_norm = mean squared L2 norm of the image->text logits (official SPU code)")
    train_biases: bool = option(False, "fc1 biases train fully (official SPU code)")
    train_projection: bool = option(False, "the image projection (visual.proj) trains fully "
                                    "(official SPU code)")
    score_samples: int = option(800, "at most this many samples of a session for scoring "
                                "(LoRSU paper: 800 offline; few-shot sessions are smaller); "
                                "0 = all", low=0)
    score_fraction: float = option(1.0, "fraction of a session's batches used for scoring "
                                   "(official code: at least 0.25)", low=0, low_open=True, high=1)


_BLOCK = r"clip\.visual\.transformer\.resblocks\.\d+\."  # a block of the image tower

STRATEGIES = (
    Declaration("spu", SPUConfig, ".plugin:SPUPlugin",
                "SPU: top 10% of each fc1 matrix by task-loss gradient trains, the rest is frozen",
                may_change=(_BLOCK + r"mlp\.c_fc\.weight",),
                presets=(Preset("spu-official",
                                {"score": "output_norm", "towers": "both", "train_biases": True,
                                 "train_projection": True, "sparsity": 0.1,
                                 "score_fraction": 1.0},
                                "SPU as the official code: output-norm score, both towers, fc1 "
                                "biases and projection train",
                                may_change=(r"clip\.(visual\.)?transformer\.resblocks\.\d+\.mlp"
                                            r"\.c_fc\.(weight|bias)", r"clip\.visual\.proj")),)),
)

__getattr__ = plugin_attributes(__name__)
