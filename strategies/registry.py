"""Strategy registry: names -> plugin classes, built-in and third-party.

Listing never imports torch (the quick CLI commands use it): built-ins are declared here as
import paths, and third-party strategies join through the `clbench.strategies` entry-point group
(`name = "package.module:PluginClass"` in their pyproject). A preset is a named set of parameter
overrides of a strategy (`lorsu-official`); it is listed and run like a strategy.
An unknown name answers with the closest known names.

A third-party strategy is always reachable as `DISTRIBUTION:NAME` (`clbench-wiseft:wiseft`) and
also as plain `NAME` when no built-in, preset or other plugin claims that name: a plugin never
shadows a built-in silently, it is listed with the name it claims and run under its qualified
one. A plugin that fails to import is reported with its one-line error by the commands that
import it (`list strategies -v`, `params`, a run of that strategy) and never breaks the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from clbench.errors import ConfigError, UserError
from clbench.names import unknown_name_message

ENTRY_POINT_GROUP = "clbench.strategies"
BUILT_IN = "built-in"
THIRD_PARTY = "third-party"


@dataclass(frozen=True)
class StrategyInfo:
    name: str
    target: str  # "module:Class"
    summary: str
    source: str = BUILT_IN  # or THIRD_PARTY
    preset: dict[str, Any] = field(default_factory=dict)
    # a reference row (zero-shot, the joint-replay upper bound), never ranked among methods
    reference: bool = False
    # third-party strategies: the installed distribution that registers it, and its version
    distribution: str | None = None
    version: str | None = None
    # the plain name a plugin claims when another strategy holds it (it runs as dist:name)
    claims: str | None = None

    @property
    def origin(self) -> str:
        """Where it comes from, for listings: "built-in" or "third-party (dist 1.0)"."""
        if self.source == BUILT_IN:
            return BUILT_IN
        return f"{THIRD_PARTY} ({self.distribution or 'unknown package'}" \
            + (f" {self.version})" if self.version else ")")


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

# each built-in's parameter class in `clbench.strategies.configs` (no torch): `check_params`
# validates a run's strategy parameters with it before the training stack is imported
BUILTIN_CONFIGS: dict[str, str] = {
    "zeroshot": "StrategyConfig", "fft": "FFTConfig", "ln": "LNConfig", "lora": "LoRAConfig",
    "dora": "LoRAConfig", "gated-lora": "GatedLoRAConfig", "gated-dora": "GatedLoRAConfig",
    "spu": "SPUConfig", "lorsu": "LoRSUConfig", "llu": "LLUConfig",
    "joint-replay": "JointReplayConfig",
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
    plugins = [_plugin_info(ep) for ep in entry_points(group=ENTRY_POINT_GROUP)]
    claimed: dict[str, int] = {}
    for plugin in plugins:
        claimed[plugin.name] = claimed.get(plugin.name, 0) + 1
    for plugin in plugins:
        qualified = f"{plugin.distribution}:{plugin.name}"
        if plugin.name in infos or claimed[plugin.name] > 1:  # taken: only the qualified name
            infos[qualified] = StrategyInfo(
                qualified, plugin.target, f"{plugin.summary}; claims the name '{plugin.name}', "
                f"which {_holder(plugin.name, infos, claimed)}: run it as '{qualified}'",
                source=THIRD_PARTY, distribution=plugin.distribution, version=plugin.version,
                claims=plugin.name)
        else:
            infos[plugin.name] = plugin
            infos[qualified] = plugin  # the explicit form always works
    return infos


def _plugin_info(ep) -> StrategyInfo:
    """A plugin's entry, read from its package metadata without importing it: the summary
    is the package's own (`description` in its pyproject), else its entry point."""
    dist = getattr(ep, "dist", None)
    name = dist.name if dist is not None else "unknown"
    version = dist.version if dist is not None else None
    summary = (dist.metadata.get("Summary") or "").strip() if dist is not None else ""
    return StrategyInfo(ep.name, ep.value, summary or f"third-party strategy ({ep.value})",
                        source=THIRD_PARTY, distribution=name, version=version)


def _holder(name: str, infos: dict[str, StrategyInfo], claimed: dict[str, int]) -> str:
    if name in BUILTIN:
        return "is a built-in strategy"
    if name in PRESETS:
        return "is a built-in preset"
    return f"{claimed.get(name, 0)} installed packages claim"


def listed_names(infos: dict[str, StrategyInfo]) -> list[str]:
    """Names to list: each strategy once (a plugin under its plain name when it has one)."""
    plain = {i.target for n, i in infos.items() if i.source == THIRD_PARTY and ":" not in n}
    return sorted(n for n, i in infos.items()
                  if not (":" in n and i.claims is None and i.target in plain))


def claimants(name: str) -> list[StrategyInfo]:
    """Plugins that claim `name` but run under their qualified name (a built-in holds it)."""
    return [i for i in available().values() if i.claims == name]


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
    except Exception as err:  # noqa: BLE001 - a plugin may raise anything at import
        what = f"{type(err).__name__}: {err}".strip().splitlines()[0]
        hint = (f"the package {entry.distribution} {entry.version or ''} is installed but its "
                f"strategy does not import: fix or uninstall it (pip uninstall "
                f"{entry.distribution}); other strategies are not affected"
                if entry.source == THIRD_PARTY else "reinstall clbench")
        raise UserError(f"strategy '{name}' could not be loaded from {entry.target}: {what}",
                        hint=hint) from None
    from clbench.strategies.base import StrategyPlugin

    if not (isinstance(cls, type) and issubclass(cls, StrategyPlugin)):
        raise UserError(f"strategy '{name}' ({entry.target}) is not a clbench StrategyPlugin")
    return cls


def config_class(name: str) -> type:
    """The parameter dataclass of a strategy (or preset): a built-in's without importing its
    plugin (nor torch), a third-party plugin's from its class."""
    entry = info(name)
    base = PRESETS[name][0] if name in PRESETS else name
    if entry.source == BUILT_IN and base in BUILTIN_CONFIGS:
        from clbench.strategies import configs

        return getattr(configs, BUILTIN_CONFIGS[base])
    return load_class(name).config_class


def check_params(name: str, params: dict[str, Any] | None = None) -> None:
    """Raise the UserError a run of strategy `name` with `params` would raise for an unknown
    name, an unknown parameter or a bad value (the checks that need the model's architecture
    come later, on a weightless copy)."""
    from clbench.options import build_dataclass

    merged = {**info(name).preset, **(params or {})}
    try:
        build_dataclass(config_class(name), merged, "strategy.")
    except ConfigError as err:
        raise ConfigError(f"{err} [strategy {name}]", hint=err.hint) from None


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
