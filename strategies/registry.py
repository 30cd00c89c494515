"""Strategy registry: names -> plugin classes, built-in and third-party.

Listing never imports torch (the quick CLI commands use it): built-ins are declared here as
import paths, and third-party strategies join through the `clbench.strategies` entry-point group
(`name = "package.module:PluginClass"` in their pyproject). A preset is a named set of parameter
overrides of a strategy (`lorsu-official`); it is listed and run like a strategy.
An unknown name answers with the closest known names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from clbench.errors import ConfigError, UserError
from clbench.names import unknown_name_message

ENTRY_POINT_GROUP = "clbench.strategies"


@dataclass(frozen=True)
class StrategyInfo:
    name: str
    target: str  # "module:Class"
    summary: str
    source: str = "built-in"
    preset: dict[str, Any] = field(default_factory=dict)
    # a reference row (zero-shot, the joint-replay upper bound), never ranked among methods
    reference: bool = False


BUILTIN: dict[str, tuple[str, str]] = {
    "zeroshot": ("clbench.strategies.zeroshot:ZeroShotPlugin",
                 "no training: the zero-shot reference"),
    "fft": ("clbench.strategies.fft:FullFineTuningPlugin",
            "full fine-tuning of the vision tower (F-FT)"),
    "ln": ("clbench.strategies.ln:LayerNormTuningPlugin",
           "LayerNorm tuning: only LayerNorm weights and biases train (LN)"),
    "lora": ("clbench.strategies.lora:LoRAPlugin",
             "LoRA on the fused qkv, out_proj, fc1, fc2 of every block and the image projection "
             "(rank 32; the LoRSU paper's Table 9 count)"),
    "dora": ("clbench.strategies.lora:DoRAPlugin",
             "DoRA: weight-decomposed LoRA (magnitude and direction) on the same targets"),
    "gated-lora": ("clbench.strategies.lora:GatedLoRAPlugin",
                   "LoRA on q, k, v, out_proj, fc1, fc2 gated by learned scores, L1 penalty "
                   "summed over blocks (Selective LoRA eq. 4)"),
    "gated-dora": ("clbench.strategies.lora:GatedDoRAPlugin",
                   "DoRA blocks gated by learned scores, L1 penalty summed over blocks "
                   "(Selective LoRA eq. 4)"),
    "spu": ("clbench.strategies.spu:SPUPlugin",
            "SPU: top 10% of each fc1 matrix by task-loss gradient trains, the rest is frozen"),
    "lorsu": ("clbench.strategies.lorsu:LoRSUPlugin",
              "LoRSU: top 5% of fc1 by squared gradient + one LoRA on the fused qkv masked to the "
              "top-2 heads' rows + a projection LoRA (Table 9's count)"),
    "llu": ("clbench.strategies.llu:LLUPlugin",
            "localized latent updates: local affine adapters on frozen embeddings (identity "
            "penalty: mean squared deviation)"),
    "joint-replay": ("clbench.strategies.joint_replay:JointReplayPlugin",
                     "reference, not a continual method: the upper bound with replay (full "
                     "fine-tuning on each session mixed with the scenario's replayed clean data)"),
}

# reference strategies: shown as reference rows, never ranked among the methods
REFERENCE: frozenset[str] = frozenset({"zeroshot", "joint-replay"})

# preset name -> (base strategy, parameter overrides, summary)
PRESETS: dict[str, tuple[str, dict[str, Any], str]] = {
    "spu-official": ("spu", {"score": "output_norm", "towers": "both", "train_biases": True,
                             "train_projection": True, "sparsity": 0.1, "score_fraction": 1.0},
                     "SPU as the official code: output-norm score, both towers, fc1 biases and "
                     "projection train"),
    "lorsu-official": ("lorsu", {"head_score": "qkv", "lora_layout": "masked_fused",
                                 "train_biases": True, "proj_lora": True, "rank": 64,
                                 "alpha": 64.0, "sparsity": 0.1, "top_k_heads": 2},
                       "LoRSU as the official code: q/k/v head score, one row-masked LoRA on the "
                       "fused in-projection, biases and a projection LoRA, rank 64"),
    "lorsu-per-head": ("lorsu", {"lora_layout": "per_head", "proj_lora": False},
                       "LoRSU eqs. 6-8 read per head: one LoRA pair per chosen (head, q|k|v) row "
                       "block, no projection LoRA (more than Table 9's count)"),
    "lora-qkv-split": ("lora", {"targets": ["q", "k", "v", "out_proj", "fc1", "fc2"],
                                "proj_lora": False},
                       "LoRA with separate q, k, v factors, no projection LoRA (the Selective "
                       "LoRA paper's 6 blocks per layer; more than Table 9's LoRA count)"),
    "dora-qkv-split": ("dora", {"targets": ["q", "k", "v", "out_proj", "fc1", "fc2"],
                                "proj_lora": False},
                       "DoRA on the targets of lora-qkv-split (those of gated-dora, ungated)"),
    "gated-lora-taps": ("gated-lora", {"penalty_reduction": "mean"},
                        "gated LoRA with the score penalty averaged over the blocks, as the TAPS "
                        "code (1/blocks of eq. 4's sum)"),
    "gated-dora-taps": ("gated-dora", {"penalty_reduction": "mean"},
                        "gated DoRA with the score penalty averaged over the blocks, as the TAPS "
                        "code (1/blocks of eq. 4's sum)"),
    "llu-literal": ("llu", {"penalty_norm": "frobenius"},
                    "LLU with eq. 6 read literally: unsquared norms at lambda 1e3, which keep "
                    "W = I and b = 0 (a zero-shot row)"),
}


def available() -> dict[str, StrategyInfo]:
    """Every known strategy and preset by name, without importing any of them."""
    infos = {name: StrategyInfo(name, target, summary, reference=name in REFERENCE)
             for name, (target, summary) in BUILTIN.items()}
    for preset, (base, params, summary) in PRESETS.items():
        infos[preset] = StrategyInfo(preset, BUILTIN[base][0], summary, preset=dict(params))
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in infos:
            continue  # a built-in name cannot be shadowed by a plugin package
        dist = getattr(ep, "dist", None)
        source = f"plugin ({dist.name})" if dist is not None else "plugin"
        infos[ep.name] = StrategyInfo(ep.name, ep.value, f"third-party strategy ({ep.value})",
                                      source=source)
    return infos


def strategy_and_base(strategy: Any) -> tuple[str, ...]:
    """A config's strategy name, then a preset's base strategy: the keys a scenario's
    per-strategy training settings are looked up by."""
    name = strategy.get("name") if isinstance(strategy, dict) else strategy
    if not name:
        return ()
    return (str(name), PRESETS[name][0]) if name in PRESETS else (str(name),)


def info(name: str) -> StrategyInfo:
    infos = available()
    if name not in infos:
        raise UserError(unknown_name_message("strategy", name, infos),
                        hint="`clbench list strategies` shows them all")
    return infos[name]


def load_class(name: str) -> type:
    """Import the plugin class of a strategy (or preset) by name."""
    entry = info(name)
    module_name, _, attr = entry.target.partition(":")
    try:
        cls = getattr(import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise UserError(f"strategy '{name}' could not be loaded from {entry.target}: {err}",
                        hint="is the plugin package installed in this environment?") from None
    from clbench.strategies.base import StrategyPlugin

    if not (isinstance(cls, type) and issubclass(cls, StrategyPlugin)):
        raise UserError(f"strategy '{name}' ({entry.target}) is not a clbench StrategyPlugin")
    return cls


def create(name: str, params: dict[str, Any] | None = None):
    """A configured plugin instance; parameters are validated by the strategy's config class."""
    from clbench.options import build_dataclass

    entry = info(name)
    cls = load_class(name)
    merged = {**entry.preset, **(params or {})}
    try:
        config = build_dataclass(cls.config_class, merged, "strategy.")
    except ConfigError as err:
        raise ConfigError(f"{err} [strategy {name}]", hint=err.hint) from None
    return cls(config)


def resolved_params(plugin) -> dict[str, Any]:
    """The full parameter set of a configured plugin (defaults included), for storing."""
    import dataclasses

    return dataclasses.asdict(plugin.config)
