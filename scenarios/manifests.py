"""Scenario and dataset declarations: YAML files in `data_manifests/` (package data).

Declarations are data, like open_clip's model configs or lm-evaluation-harness task YAML:
`datasets/<name>.yaml` says how to load a dataset (loader, splits, class names, prompt templates,
where the data is expected and how to obtain it); `scenarios/<name>.yaml` says how to make a
continual stream of it (target dataset, protocol, shots, session grouping, control sets, the
paper's training defaults). A scenario can also be given as a path to a YAML file of its own.
This module reads and validates them without importing torch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from clbench.errors import ConfigError, UserError
from clbench.names import unknown_name_message

LOADERS = ("proxy", "folder", "gtsrb", "imagenet")
PROTOCOLS = ("few-shot", "offline")


def manifest_dir() -> Path:
    return Path(str(resources.files("clbench.data_manifests")))


def _read_yaml(path: Path) -> tuple[dict[str, Any], str]:
    text = path.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"malformed YAML in {path}{where}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data, hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_keys(data: dict[str, Any], allowed: set[str], where: str) -> None:
    from clbench.names import closest

    for key in data:
        if key not in allowed:
            near = closest(key, allowed)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise ConfigError(f"{where}: unknown key '{key}'{hint}")


@dataclass(frozen=True)
class DatasetManifest:
    name: str
    loader: str
    splits: tuple[str, ...]
    description: str = ""
    obtain: str = ""  # how a user gets the data
    layout: str = ""  # the expected folder layout under the data root
    subdir: str = ""  # folder name under the data root
    class_names: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()
    # a fixed, seeded subset evaluated as its own eval set: {per_class: N, seed: S}
    subset: dict[str, int] | None = None
    expected: dict[str, int] = field(default_factory=dict)  # image count per split (as published)
    generation_prompts: dict[str, str] = field(default_factory=dict)  # DALL-E: caption -> prompt
    prepare: str = ""  # the `clbench data prepare` command that makes this dataset
    hash: str = ""
    path: str = ""


_DATASET_KEYS = {"name", "loader", "splits", "description", "obtain", "layout", "subdir",
                 "class_names", "templates", "subset", "expected", "generation_prompts",
                 "prepare"}


def list_datasets() -> list[str]:
    return sorted(p.stem for p in (manifest_dir() / "datasets").glob("*.yaml"))


def load_dataset_manifest(name: str) -> DatasetManifest:
    path = manifest_dir() / "datasets" / f"{name}.yaml"
    if not path.is_file():
        raise UserError(unknown_name_message("dataset", name, list_datasets()))
    data, digest = _read_yaml(path)
    _check_keys(data, _DATASET_KEYS, str(path))
    if data.get("loader") not in LOADERS:
        raise ConfigError(f"{path}: loader must be one of {', '.join(LOADERS)}")
    subset = data.get("subset")
    if subset is not None and (not isinstance(subset, dict) or set(subset) != {"per_class", "seed"}
                               or not all(isinstance(v, int) for v in subset.values())
                               or subset["per_class"] < 1):
        raise ConfigError(f"{path}: subset must be {{per_class: N, seed: S}} with integers, N >= 1")
    return DatasetManifest(
        name=data.get("name", name), loader=data["loader"],
        splits=tuple(data.get("splits", ["test"])), description=data.get("description", ""),
        obtain=data.get("obtain", ""), layout=data.get("layout", ""),
        subdir=data.get("subdir", name), class_names=tuple(data.get("class_names", [])),
        templates=tuple(data.get("templates", [])), subset=subset,
        expected={str(k): int(v) for k, v in (data.get("expected") or {}).items()},
        generation_prompts=dict(data.get("generation_prompts") or {}),
        prepare=data.get("prepare", ""), hash=digest, path=str(path))


@dataclass(frozen=True)
class ScenarioManifest:
    name: str
    target: str
    protocol: str
    eval_sets: tuple[str, ...]
    shots: int | None = None
    session_sizes: tuple[int, ...] = ()
    class_order: Any = "dataset"  # "dataset", "seeded", or a list of class names
    # "class": sessions.order lists classes; "group": it lists source classes (TSI actions),
    # several of which may share a class, so a class can recur in later sessions
    session_by: str = "class"
    training: dict[str, Any] = field(default_factory=dict)
    # strategy name -> training keys that override `training` for that strategy only
    strategy_training: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""
    hash: str = ""
    path: str = ""


def training_for(manifest: ScenarioManifest, *strategy_names: str) -> dict[str, Any]:
    """The scenario's training block with the per-strategy overrides of the first of
    `strategy_names` that has any (a caller passes a preset's base strategy after its name)."""
    own = next((manifest.strategy_training[n] for n in strategy_names
                if n in manifest.strategy_training), {})
    return {**manifest.training, **own}


_SCENARIO_KEYS = {"name", "description", "target", "protocol", "shots", "sessions", "eval_sets",
                  "training", "strategy_training"}


def list_scenarios() -> list[str]:
    return sorted(p.stem for p in (manifest_dir() / "scenarios").glob("*.yaml"))


def load_scenario_manifest(name_or_path: str) -> ScenarioManifest:
    candidate = Path(name_or_path)
    if name_or_path.endswith((".yaml", ".yml")):
        if not candidate.is_file():
            raise UserError(f"scenario file not found: {name_or_path}")
        path = candidate
    else:
        path = manifest_dir() / "scenarios" / f"{name_or_path}.yaml"
        if not path.is_file():
            raise UserError(unknown_name_message("scenario", name_or_path, list_scenarios()),
                            hint="`clbench list scenarios` shows them all")
    data, digest = _read_yaml(path)
    _check_keys(data, _SCENARIO_KEYS, str(path))
    protocol = data.get("protocol", "few-shot")
    if protocol not in PROTOCOLS:
        raise ConfigError(f"{path}: protocol must be one of {', '.join(PROTOCOLS)}")
    if "target" not in data:
        raise ConfigError(f"{path}: missing 'target' (the dataset the stream is made of)")
    sessions = data.get("sessions", {}) or {}
    if not isinstance(sessions, dict):
        raise ConfigError(f"{path}: 'sessions' must be a mapping with 'sizes' and 'order'")
    _check_keys(sessions, {"sizes", "order", "by"}, f"{path}: sessions")
    session_by = sessions.get("by", "class")
    if session_by not in ("class", "group"):
        raise ConfigError(f"{path}: sessions.by must be 'class' or 'group'")
    if session_by == "group" and not isinstance(sessions.get("order"), list):
        raise ConfigError(f"{path}: sessions.by: group needs sessions.order to list the groups")
    shots = data.get("shots")
    if protocol == "few-shot" and (not isinstance(shots, int) or shots < 1):
        raise ConfigError(f"{path}: a few-shot scenario needs 'shots' (a positive integer)")
    sizes = tuple(int(s) for s in sessions.get("sizes", []))
    if protocol == "few-shot" and (not sizes or min(sizes) < 1):
        raise ConfigError(f"{path}: a few-shot scenario needs sessions.sizes, e.g. [4, 4, 4]")
    training = data.get("training", {}) or {}
    if not isinstance(training, dict):
        raise ConfigError(f"{path}: 'training' must be a mapping")
    per_strategy = data.get("strategy_training", {}) or {}
    if not isinstance(per_strategy, dict) or not all(isinstance(v, dict)
                                                     for v in per_strategy.values()):
        raise ConfigError(f"{path}: 'strategy_training' must map strategy names to training keys, "
                          "e.g. {lorsu: {lr: 3.0e-4}}")
    return ScenarioManifest(
        name=data.get("name", path.stem), target=data["target"], protocol=protocol,
        eval_sets=tuple(data.get("eval_sets", [])), shots=shots, session_sizes=sizes,
        class_order=sessions.get("order", "dataset"), session_by=session_by,
        training=dict(training),
        strategy_training={str(k): dict(v) for k, v in per_strategy.items()},
        description=data.get("description", ""), hash=digest, path=str(path))
