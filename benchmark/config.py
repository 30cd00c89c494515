"""Run configuration: typed, validated, hashed.

A run is described by one `RunConfig`. It is assembled from, in increasing precedence:
built-in defaults, the scenario manifest's `training:` block (the paper's per-dataset protocol,
LoRSU paper appendix B), a YAML file (`--config`), the CLI flags, and `--set key=value`
overrides. Unknown keys and bad values raise `ConfigError` naming the key. The resolved config is
hashed (`RunConfig.hash()`) and stored with the run, so two runs with the same hash ran the same
protocol.

This module must stay light: the quick CLI commands import it without torch.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from clbench.errors import ConfigError
from clbench.names import closest


def option(default: Any, help: str, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, **kwargs: Any) -> Any:
    """A dataclass field with a help text and an optional allowed range.

    `low`/`high` bound numeric values (inclusive; `low_open=True` excludes `low`). Used by run
    configs and strategy configs alike, so every option explains itself in `--help` and errors.
    """
    metadata = {"help": help, "low": low, "high": high, "low_open": low_open}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata, **kwargs)
    return field(default=default, metadata=metadata, **kwargs)


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
    epochs: int | None = option(None, "epochs per session (default: the scenario's)", low=0)
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


# Training defaults when neither the scenario nor the user sets them (few-shot protocol of the
# LoRSU paper: batch 8; the official LoRSU code uses lr 1e-5).
TRAINING_FALLBACKS = {"epochs": 10, "batch_size": 8, "lr": 1e-5}


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

    def to_dict(self) -> dict[str, Any]:
        out = {
            "strategy": {"name": self.strategy, **self.strategy_params},
            "scenario": self.scenario,
            "seed": self.seed,
            "device": self.device,
            "model": dataclasses.asdict(self.model),
            "training": dataclasses.asdict(self.training),
        }
        if self.controls is not None:  # only when set, so earlier configs keep their hashes
            out["controls"] = list(self.controls)
        return out

    def hash(self) -> str:
        from clbench.store import canonical_hash

        return canonical_hash(self.to_dict())


# --------------------------------------------------------------------------- value coercion


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Convert `value` to the annotated type `tp`, or raise ConfigError naming `key`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        is_null = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_null and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(key, value, arg)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices:
            return value
        near = closest(str(value), [str(c) for c in choices])
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ConfigError(f"{key}: {value!r} is not {_type_name(tp)}{hint}")
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (inner,) = typing.get_args(tp)[:1] or (Any,)
        return [_coerce(f"{key}[{i}]", v, inner) for i, v in enumerate(value)]
    if origin is dict or tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
            return False
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    return value


def _check_range(key: str, value: Any, meta: typing.Mapping[str, Any]) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    low, high = meta.get("low"), meta.get("high")
    too_low = low is not None and (value <= low if meta.get("low_open") else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        left = "(" if meta.get("low_open") else "["
        span = f"{left}{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise ConfigError(f"{key}: {value!r} is outside the allowed range {span}")


def build_dataclass(cls: type, values: dict[str, Any], prefix: str) -> Any:
    """Instantiate dataclass `cls` from a plain mapping, validating every key and value.

    Errors name the full key (`prefix.field`) and suggest the closest field for unknown keys.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for name, value in values.items():
        if name not in fields:
            near = closest(name, fields)
            hint = f" (did you mean '{prefix}{near[0]}'?)" if near else ""
            raise ConfigError(f"unknown config key '{prefix}{name}'{hint}",
                              hint=f"valid keys: {', '.join(prefix + f for f in fields)}")
        coerced = _coerce(prefix + name, value, hints[name])
        _check_range(prefix + name, coerced, fields[name].metadata)
        kwargs[name] = coerced
    try:
        obj = cls(**kwargs)
    except TypeError as err:  # a required field is missing
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: {err}") from None
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()  # cross-field checks; raise ConfigError themselves
    return obj


def describe_fields(cls: type) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, help) for every field: used by `--help` texts and `clbench list`."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        rows.append((f.name, _type_name(hints[f.name]), default, f.metadata.get("help", "")))
    return rows


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
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(f"malformed YAML in {path}{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
    return data


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


TOP_LEVEL_KEYS = ("strategy", "scenario", "seed", "device", "model", "training", "controls")


def assemble(layers: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge raw config layers (later wins); `strategy: name` becomes `strategy: {name: ...}`."""
    merged: dict[str, Any] = {}
    for layer in layers:
        layer = dict(layer)
        if isinstance(layer.get("strategy"), str):
            layer["strategy"] = {"name": layer["strategy"]}
        merged = _merge(merged, layer)
    for key in merged:
        if key not in TOP_LEVEL_KEYS:
            near = closest(key, TOP_LEVEL_KEYS)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise ConfigError(f"unknown config key '{key}'{hint}",
                              hint=f"top-level keys: {', '.join(TOP_LEVEL_KEYS)}")
    return merged


def resolve(raw: dict[str, Any], scenario_training: dict[str, Any] | None = None) -> RunConfig:
    """Validate a merged raw config into a RunConfig, filling training defaults from the scenario.

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
    seed = _coerce("seed", raw.get("seed", 0), int)
    device = _coerce("device", raw.get("device", "auto"), str)
    if device != "auto" and not (device == "cpu" or device.startswith("cuda")
                                 or device == "mps"):
        raise ConfigError(f"device: {device!r} is not auto, cpu, cuda, cuda:N or mps")
    controls = raw.get("controls")
    if isinstance(controls, str):
        controls = [c.strip() for c in controls.split(",") if c.strip()]
    if controls is not None and not (isinstance(controls, list)
                                     and all(isinstance(c, str) for c in controls)):
        raise ConfigError(f"controls: expected a list of eval set names, got {controls!r}",
                          hint="for example --controls dalle,imagenet-10pc")
    params = {k: v for k, v in strategy.items() if k != "name"}
    return RunConfig(strategy=str(strategy["name"]), scenario=str(scenario),
                     strategy_params=params, model=model, training=training, seed=seed,
                     device=device, controls=controls)
