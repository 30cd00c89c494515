"""Run configuration: typed, validated, hashed.

A run is described by one `RunConfig`. It is assembled from, in increasing precedence:
built-in defaults, the scenario manifest's `training:` block (the paper's per-dataset protocol,
LoRSU paper appendix B), a YAML file (`--config`), the CLI flags, and `--set key=value`
overrides. Unknown keys and bad values raise `ConfigError` naming the key. The resolved config is
hashed (`RunConfig.hash()`) and stored with the run, so two runs with the same hash ran the same
protocol. Avalanche plugins added to the strategy (`plugins:`, their arguments in `plugin:`;
`clbench.training.extra_plugins`) are part of it: a run with EWC hashes differently from one without.

This module must stay light: the quick CLI commands import it without torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from clbench.config.plugin_specs import normalise as normalise_plugins
from clbench.errors import ConfigError
from clbench.hashing import canonical_hash
from clbench.names import closest
from clbench.options import build_dataclass, coerce, option
from clbench.yaml_files import deep_merge, read_yaml_mapping

# --------------------------------------------------------------------------- the config sections


@dataclass
class ModelConfig:
    arch: str = option("proxy-vit-tiny", "open_clip architecture (e.g. ViT-L-14) or the embedded "
                       "proxy model 'proxy-vit-tiny'")
    pretrained: str | None = option(None, "open_clip pretrained tag (e.g. openai); none = the "
                                    "proxy checkpoint for the proxy, random weights otherwise")
    checkpoint: str | None = option(None, "path to a local checkpoint file (instead of a tag)")


@dataclass
class TrainingConfig:
    epochs: int | None = option(None, "epochs per session (default: the scenario's)", low=1)
    batch_size: int | None = option(None, "training batch size (default: the scenario's)", low=1)
    lr: float | None = option(None, "peak learning rate (default: the scenario's)", low=0,
                              low_open=True)
    optimizer: Literal["adam", "adamw", "sgd"] = option("adam", "optimizer (paper: Adam)")
    weight_decay: float = option(0.0, "weight decay", low=0)
    scheduler: Literal["cosine", "constant"] = option(
        "cosine", "learning-rate schedule, stepped per batch (paper: cosine with warm-up)")
    warmup: float = option(0.1, "warm-up length as a fraction of a session's steps", low=0, high=1)
    loss: Literal["flyp", "ce"] = option(
        "flyp", "flyp = CLIP contrastive loss between images and template captions (FLYP, "
        "paper); ce = cross-entropy on the zero-shot head")
    eval_batch_size: int = option(256, "batch size for evaluation", low=1)
    precision: Literal["fp32", "bf16", "fp16"] = option(
        "fp32", "autocast precision on CUDA (fp16 adds a gradient scaler); CPU runs use fp32")
    grad_clip: float | None = option(None, "clip the gradient norm to this value", low=0,
                                     low_open=True)
    # speed switches (`clbench.training.speed`): how a run computes, not what; off by default, and left
    # out of the config hash while off (`RunConfig.to_dict`)
    grad_checkpointing: bool = option(
        False, "activation checkpointing of the image tower's transformer blocks: each block's "
        "activations are recomputed in the backward pass instead of kept (less memory, about "
        "one more forward pass of compute); same loss and gradients. The text tower is left "
        "as it is")
    channels_last: bool = option(
        False, "the image tower's weights and input batches in channels-last (NHWC) memory "
        "format; same outputs up to float rounding")
    compile: bool = option(
        False, "torch.compile the image encoder (default mode): the first batches of a session "
        "compile (slow, minutes on a CPU); a compilation failure stops the run with an error "
        "naming this key")
    workers: int | None = option(
        None, "DataLoader worker processes loading the training batches (pinned memory on "
        "CUDA); none = automatic: 0 on the CPU, min(4, CPU count) on CUDA", low=0)
    sdpa: bool = option(
        False, "evaluate with PyTorch's fused scaled-dot-product attention: turns off "
        "nn.MultiheadAttention's inference fast path in the image tower, which on the CPU "
        "computes attention unfused (training always uses the fused kernel); same outputs up "
        "to float rounding")


# Training defaults when neither the scenario nor the user sets them (few-shot protocol of the
# LoRSU paper: batch 8; the official LoRSU code uses lr 1e-5).
TRAINING_FALLBACKS = {"epochs": 10, "batch_size": 8, "lr": 1e-5}
# the speed switches of TrainingConfig: in the hashed config only when set
SPEED_SWITCHES = ("grad_checkpointing", "channels_last", "compile", "workers", "sdpa")


@dataclass
class RunConfig:
    strategy: str
    scenario: str
    strategy_params: dict[str, Any] = field(default_factory=dict)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    seed: int = 0
    device: str = "auto"
    # control eval sets replacing the scenario's (e.g. the fast ImageNet subset); None: its own
    controls: list[str] | None = None
    # Avalanche plugins added to the strategy, [{class, args}]: as given until the runner
    # resolves them (`clbench.training.extra_plugins.create_all`), then the class's public path and its
    # full arguments, the form that is hashed and stored
    plugins: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "strategy": {"name": self.strategy, **self.strategy_params},
            "scenario": self.scenario,
            "seed": self.seed,
            "device": self.device,
            "model": dataclasses.asdict(self.model),
            "training": dataclasses.asdict(self.training),
        }
        defaults = {f.name: f.default for f in dataclasses.fields(TrainingConfig)}
        for key in SPEED_SWITCHES:  # only when set, so earlier configs keep their hashes
            if out["training"][key] == defaults[key]:
                del out["training"][key]
        if self.controls is not None:  # only when set, so earlier configs keep their hashes
            out["controls"] = list(self.controls)
        if self.plugins:  # likewise
            out["plugins"] = [{"class": p["class"], "args": dict(p["args"])}
                              for p in self.plugins]
        return out

    def hash(self) -> str:
        return canonical_hash(self.to_dict())


# --------------------------------------------------------------------------- assembling a config


def parse_set_options(items: list[str]) -> dict[str, Any]:
    """`["training.lr=1e-4", "strategy.rank=8"]` -> nested dict. Values are parsed as YAML."""
    nested: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}",
                              hint="for example --set training.lr=1e-4")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: '{part}' is not a section")
        node[parts[-1]] = value
    return nested


def load_yaml_config(path: str | Path) -> dict[str, Any]:
    return read_yaml_mapping(path, "config file")


TOP_LEVEL_KEYS = ("strategy", "scenario", "seed", "device", "model", "training", "controls",
                  "plugins", "plugin")


def assemble(layers: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge raw config layers (later wins); `strategy: name` becomes `strategy: {name: ...}`."""
    merged: dict[str, Any] = {}
    for layer in layers:
        layer = dict(layer)
        if isinstance(layer.get("strategy"), str):
            layer["strategy"] = {"name": layer["strategy"]}
        if "strategy" in layer and not isinstance(layer["strategy"], dict):
            raise ConfigError(f"strategy: expected a name or a mapping with a name, got "
                              f"{layer['strategy']!r}", hint="e.g. `strategy: lorsu` or "
                              "`strategy: {name: lora, rank: 8}`; one strategy per run")
        merged = deep_merge(merged, layer)
    for key in merged:
        if key not in TOP_LEVEL_KEYS:
            near = closest(key, TOP_LEVEL_KEYS)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise ConfigError(f"unknown config key '{key}'{hint}",
                              hint=f"top-level keys: {', '.join(TOP_LEVEL_KEYS)}")
    return merged


def resolve(raw: dict[str, Any], scenario_training: dict[str, Any] | None = None,
            scenario_strategy: dict[str, Any] | None = None) -> RunConfig:
    """Validate a merged raw config into a RunConfig, filling training defaults and strategy
    parameters from the scenario's declaration (any the raw config sets win).

    Strategy parameters are validated later by the strategy's own config class (it may need
    torch); here they are only carried.
    """
    strategy = raw.get("strategy") or {}
    if not isinstance(strategy, dict) or not strategy.get("name"):
        raise ConfigError("strategy: missing", hint="pass --strategy NAME (see `clbench list "
                          "strategies`)")
    scenario = raw.get("scenario")
    if not scenario:
        raise ConfigError("scenario: missing", hint="pass --scenario NAME (see `clbench list "
                          "scenarios`)")
    for section in ("model", "training"):
        if section in raw and not isinstance(raw[section], dict):
            raise ConfigError(f"{section}: expected a mapping, got {raw[section]!r}")
    model = build_dataclass(ModelConfig, raw.get("model", {}), "model.")
    training_raw = dict(raw.get("training", {}))
    for key, value in {**TRAINING_FALLBACKS, **(scenario_training or {})}.items():
        if training_raw.get(key) is None:
            training_raw[key] = value
    training = build_dataclass(TrainingConfig, training_raw, "training.")
    seed = coerce("seed", raw.get("seed", 0), int)
    if not 0 <= seed < 2**32:  # what numpy and torch accept as a seed
        raise ConfigError(f"seed: {seed} is outside the allowed range [0, 2**32 - 1]",
                          hint="pass --seed N with 0 <= N < 4294967296")
    device = coerce("device", raw.get("device", "auto"), str)
    if device != "auto" and not (device == "cpu" or device.startswith("cuda")
                                 or device == "mps"):
        raise ConfigError(f"device: {device!r} is not auto, cpu, cuda, cuda:N or mps")
    controls = raw.get("controls")
    if isinstance(controls, str):
        controls = [c.strip() for c in controls.split(",") if c.strip()]
    if controls is not None and not (isinstance(controls, list) and controls
                                     and all(isinstance(c, str) for c in controls)):
        raise ConfigError(f"controls: expected a non-empty list of eval set names, got "
                          f"{controls!r}",
                          hint="for example --controls dalle,imagenet-10pc")
    params = {**(scenario_strategy or {}), **{k: v for k, v in strategy.items() if k != "name"}}
    plugins = normalise_plugins(raw.get("plugins"), raw.get("plugin"))
    return RunConfig(strategy=str(strategy["name"]), scenario=str(scenario),
                     strategy_params=params, model=model, training=training, seed=seed,
                     device=device, controls=controls, plugins=plugins)
