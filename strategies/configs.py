"""Every built-in strategy's parameters: one dataclass per strategy, each field with its help
text, range and the paper's default (`clbench.options.option`).

They live here, apart from the plugins, because this module imports neither torch nor
Avalanche: `clbench run` checks a strategy's parameters (`registry.check_params`) and reports a
bad value in well under a second, before the training stack is imported. Each plugin module
imports its config from here (and keeps exporting it under its old name).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from clbench.errors import ConfigError
from clbench.options import option

# the weights of a transformer block that adapters and masks address (`blocks.BlockView`)
TARGETS = ("q", "k", "v", "out_proj", "fc1", "fc2")
QKV = ("q", "k", "v")
VALID_TARGETS = (*TARGETS, "qkv")
# the LoRSU paper's Table 9 layout: one factor pair on the fused in-projection, Wo, fc1, fc2
PAPER_TARGETS = ("qkv", "out_proj", "fc1", "fc2")


@dataclass
class StrategyConfig:
    """Base for strategy configs; a subclass may add `validate(self)` raising ConfigError."""


@dataclass
class TowerConfig(StrategyConfig):
    """The tuned tower(s). Default `vision`, with one sentence of the LoRSU paper against it:
    section 5.1 (Setting, "Methods.") says "When finetuning CLIP, we fine-tune both visual and text
    encoders following [8] (FLYP) with the same contrastive image language loss". Everything
    else in that paper concerns the vision encoder alone: the method updates "the vision
    encoder separately" (introduction and conclusion) so that the VLMs, which use only CLIP's
    image encoder, inherit the fix; the captions of Tables 3 and 12 say the methods "fine-tune
    the visual encoder"; Table 9's counts are percentages of the vision encoder and match only
    vision-tower layouts (`clbench params`). So the default is the vision tower trained with FLYP's
    contrastive loss (which uses the frozen text tower), and `towers: both` is the reading of
    section 5.1's sentence, available to every strategy with this option (e.g.
    `--set strategy.towers=both`).
    """

    towers: Literal["vision", "both"] = option(
        "vision", "which encoder(s) to tune: vision (the LoRSU paper's method and Table 9) or "
        "both (its section 5.1: 'we fine-tune both visual and text encoders')")


@dataclass
class FFTConfig(TowerConfig):
    pass


@dataclass
class LNConfig(TowerConfig):
    pass


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


@dataclass
class LLUConfig(StrategyConfig):
    beta: float = option(0.5, "global damping of the local interpolation", low=0, high=1)
    gamma: float = option(20.0, "locality: larger = updates only very near seen data", low=0)
    lam: float = option(1e3, "identity regularisation weight (eq. 6; paper: 1e3)", low=0)
    penalty_norm: Literal["mean_squared", "squared", "frobenius"] = option(
        "mean_squared", "the identity penalty of eq. 6: mean_squared = (||W - I||_F^2 + "
        "||b||^2) / (D^2 + D), the squared deviation per adapter entry, i.e. lam scaled to the "
        "parameter count (default: the adapters move, see the module docstring); squared = "
        "||W - I||_F^2 + ||b||^2 (at lam 1e3 they settle about 1e-4 from the identity); "
        "frobenius = ||W - I||_F + ||b||, unsquared as printed (at lam 1e3 its constant pull "
        "keeps W = I and b = 0: preset llu-literal)")
    lr: float = option(2e-3, "learning rate of the adapters: the paper trains them with CoOp's "
                       "learning rate (2e-3), not the encoder fine-tuning rate", low=0,
                       low_open=True)
    clusters: int = option(512, "memory size: stored embeddings per side (clustered beyond)",
                           low=1)
    sides: str = option("both", "which embeddings get an adapter: image, text or both")

    def validate(self) -> None:
        from clbench.errors import ConfigError

        if self.sides not in ("image", "text", "both"):
            raise ConfigError(f"strategy.sides: {self.sides!r} is not one of image, text, both")


@dataclass
class JointReplayConfig(TowerConfig):
    replay_ratio: float = option(
        1.0, "replayed samples added to each session per target training sample (1.0: as many "
        "replayed images as the session's target images; drawn afresh each session with the "
        "run seed)", low=0.0, low_open=True, high=100.0)
