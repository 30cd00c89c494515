"""Scenario and dataset declarations ("manifests"): YAML files in `data_manifests/` (package data)
and in the user's own manifest folders.

Declarations are data, like open_clip's model configs or lm-evaluation-harness task YAML:
`datasets/<name>.yaml` says how to load a dataset (its kind `loader:`, see `loaders.py`; splits,
class names, prompt templates, where the data is expected and how to obtain it);
`scenarios/<name>.yaml` says how to make a continual stream of it (target dataset, protocol,
shots, session grouping, control sets, the paper's training defaults). A scenario can also be
given as a path to a YAML file of its own. This module reads and validates them without
importing torch. (The JSON file that `clbench data prepare` writes beside the images is not a
manifest but the dataset's *file index*, `integrity.py`.)

**include.** A declaration may start from another one of the same sort:
`include: gts-20shot` (a name, looked up like any declaration) or `include: ../base.yaml` (a
path relative to the including file). The included declaration is resolved first (includes
chain), then the including file's keys override it: mappings merge key by key, recursively;
lists and scalars replace. `name` is never inherited (it is the including file's own `name` or
file name). A cycle or a missing include is a one-line ConfigError naming the file and the
include.

**User manifest folders.** Besides the built-in `data_manifests/`, declarations are read from
the folders in `$CLBENCH_MANIFESTS` (separated by `os.pathsep`), or, when set, from the folders
given to `use_manifest_dirs` (the CLI's `--manifests DIR`), which replace the variable's. Each
folder has the built-in layout: `datasets/<name>.yaml` and/or `scenarios/<name>.yaml` (`.yml`
also accepted); files directly in the folder are not read, since a file's sort (dataset or
scenario) is given by its subfolder. User declarations are listed with their origin, validated
exactly like the built-in ones, and may include built-in ones. A name declared twice (a user
file named like a built-in one, or in two user folders) is an error naming both files: nothing
is silently shadowed.

**Hashes.** Every declaration's `hash` (stored with runs as `scenario_manifest_hash` and
`dataset_manifest_hashes`) is computed from the resolved declaration: for a file without
`include` it is the sha256 of the file's text, as before (so stored runs of unchanged files
compare); for a file with `include` it is the sha256 of the resolved declaration as canonical
JSON (sorted keys), so a change to an included file changes the hash of every file including it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from clbench.errors import ConfigError, UserError
from clbench.names import unknown_name_message
from clbench.scenarios.loaders import get_kind
from clbench.scenarios.manifest_types import (  # noqa: F401 - re-exported
    BASE_TO_NEW,
    BUILT_IN,
    DEFAULT_SEEDS,
    DEFAULT_VALIDATION,
    FEW_SHOT,
    MULTI_DATASET,
    OFFLINE,
    STRATEGY_PARAMS_KEY,
    TASK_AGNOSTIC_HEAD,
    TASK_HEAD,
    DatasetManifest,
    ScenarioManifest,
    strategy_params_for,
    training_for,
)
from clbench.yaml_files import deep_merge, load_yaml_file

PROTOCOLS = (FEW_SHOT, OFFLINE, MULTI_DATASET, BASE_TO_NEW)
MANIFESTS_ENV = "CLBENCH_MANIFESTS"
DATASETS, SCENARIOS = "datasets", "scenarios"  # the subfolders, one per sort of declaration

_dirs_override: list[str] | None = None


class DeclarationError(ConfigError):
    """A declaration file is invalid; the message names the file and the key."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message, hint or "the built-in declarations (`clbench list scenarios "
                         "-v` shows their files) use every key")


def manifest_dir() -> Path:
    """The built-in declarations (`data_manifests/`)."""
    return Path(str(resources.files("clbench.data_manifests")))


def use_manifest_dirs(dirs: list[str] | None) -> None:
    """Read user declarations from `dirs` (each with `datasets/` and/or `scenarios/`) instead
    of `$CLBENCH_MANIFESTS`; None goes back to the variable. This only records the folders;
    a missing or empty folder is a UserError at the first lookup (inside the CLI's error
    handling)."""
    global _dirs_override
    _dirs_override = None if dirs is None else [str(d) for d in dirs]


def manifest_dirs() -> list[Path]:
    """The user manifest folders in effect, checked."""
    if _dirs_override is not None:
        raw, origin = _dirs_override, "--manifests"
    else:
        raw = [p for p in os.environ.get(MANIFESTS_ENV, "").split(os.pathsep) if p.strip()]
        origin = f"${MANIFESTS_ENV}"
    out: list[Path] = []
    for entry in raw:
        folder = Path(entry).expanduser()
        if not folder.is_dir():
            raise UserError(f"{origin}: manifest folder {entry} not found",
                            hint="a manifest folder holds datasets/<name>.yaml and/or "
                                 "scenarios/<name>.yaml")
        if not (folder / DATASETS).is_dir() and not (folder / SCENARIOS).is_dir():
            raise UserError(f"{origin}: {entry} has neither a {DATASETS}/ nor a {SCENARIOS}/ "
                            "folder", hint="put dataset YAML in DIR/datasets/ and scenario YAML "
                                           "in DIR/scenarios/")
        folder = folder.resolve()
        if folder not in out and folder != manifest_dir().resolve():
            out.append(folder)
    return out


def _catalog(sort: str) -> dict[str, tuple[Path, str]]:
    """name -> (file, origin) over the built-in and the user folders; a name declared twice is
    an error naming both files."""
    found: dict[str, tuple[Path, str]] = {}
    sources = [(manifest_dir(), BUILT_IN), *((d, str(d)) for d in manifest_dirs())]
    for base, origin in sources:
        folder = base / sort
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix not in (".yaml", ".yml") or not path.is_file():
                continue
            if path.stem in found:
                other = found[path.stem][0]
                raise UserError(f"{sort[:-1]} '{path.stem}' is declared twice: {other} and {path}",
                                hint="rename one of them; a user declaration never replaces "
                                     "another")
            found[path.stem] = (path, origin)
    return found


def list_datasets() -> list[str]:
    return sorted(_catalog(DATASETS))


def list_scenarios() -> list[str]:
    return sorted(_catalog(SCENARIOS))


def origins(sort: str) -> dict[str, str]:
    """name -> origin ("built-in" or the user folder) of every declaration of `sort`."""
    return {name: origin for name, (_, origin) in _catalog(sort).items()}


# --------------------------------------------------------------------------- reading, include


def _read_yaml(path: Path) -> tuple[dict[str, Any], str]:
    data, text = load_yaml_file(path, "declaration", DeclarationError)
    if data is None:
        raise DeclarationError(f"{path}: expected a mapping at the top level, got an empty file")
    return data, hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_keys(data: dict[str, Any], allowed: set[str], where: str) -> None:
    from clbench.names import closest

    for key in data:
        if key not in allowed:
            near = closest(str(key), allowed)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise DeclarationError(f"{where}: unknown key '{key}'{hint}")


def _include_target(ref: str, including: Path, sort: str) -> Path:
    if ref.endswith((".yaml", ".yml")) or "/" in ref or os.sep in ref:
        target = including.parent / Path(ref).expanduser()
        if not target.is_file():
            raise DeclarationError(f"{including}: include '{ref}': no such file ({target})")
        return target.resolve()
    catalog = _catalog(sort)
    if ref not in catalog:
        raise DeclarationError(f"{including}: include '{ref}': "
                          + unknown_name_message(sort[:-1], ref, catalog))
    return catalog[ref][0].resolve()


@dataclass(frozen=True)
class Resolved:
    data: dict[str, Any]  # the declaration with its includes applied
    hash: str
    includes: tuple[str, ...]  # the files it includes, nearest first


def resolve(path: Path, sort: str, allowed: set[str],
            _seen: tuple[Path, ...] = ()) -> Resolved:
    """Read a declaration file of `sort` ("datasets" or "scenarios") with its includes."""
    path = path.resolve()
    data, digest = _read_yaml(path)
    _check_keys(data, allowed | {"include"}, str(path))
    if "include" not in data:
        return Resolved(data, digest, ())
    ref = data.pop("include")
    if not isinstance(ref, str) or not ref.strip():
        raise DeclarationError(f"{path}: include must be a {sort[:-1]} name or a path to a YAML "
                          f"file, got {ref!r}")
    target = _include_target(ref.strip(), path, sort)
    if target == path or target in _seen:
        cycle = " -> ".join(p.name for p in (*_seen, path, target))
        raise DeclarationError(f"{path}: include '{ref}' makes a cycle ({cycle})")
    base = resolve(target, sort, allowed, (*_seen, path))
    merged = deep_merge({k: v for k, v in base.data.items() if k != "name"}, data)
    canonical = json.dumps(merged, sort_keys=True, default=str, separators=(",", ":"))
    return Resolved(merged, hashlib.sha256(canonical.encode()).hexdigest()[:16],
                    (str(target), *base.includes))


# --------------------------------------------------------------------------- value checks


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(path: Path, key: str, expected: str, value: Any) -> ConfigError:
    return DeclarationError(f"{path}: {key} must be {expected}, got {_shown(value)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(data: dict, key: str, path: Path, default: str = "") -> str:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise _fail(path, key, "a string", value)
    return value


def _texts(data: dict, key: str, path: Path, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, list):
        raise _fail(path, key, "a list of strings", value)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _fail(path, f"{key}[{i}]", "a string", item)
    return tuple(value)


def _mapping(data: dict, key: str, path: Path, what: str = "a mapping") -> dict:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(path, key, what, value)
    return value


def _file_name_matches(data: dict, path: Path, from_catalog: bool) -> str:
    name = _text(data, "name", path, path.stem)
    if from_catalog and name != path.stem:
        raise DeclarationError(f"{path}: name '{name}' differs from the file name '{path.stem}' "
                          "(declarations are looked up by file name)")
    return name


# --------------------------------------------------------------------------- datasets


_DATASET_KEYS = {"name", "loader", "splits", "description", "obtain", "layout", "subdir",
                 "class_names", "templates", "subset", "expected", "generation_prompts",
                 "prepare"}


def load_dataset_manifest(name: str) -> DatasetManifest:
    catalog = _catalog(DATASETS)
    if name not in catalog:
        raise UserError(unknown_name_message("dataset", name, catalog),
                        hint="`clbench list datasets` shows them all")
    path, origin = catalog[name]
    resolved = resolve(path, DATASETS, _DATASET_KEYS)
    data = resolved.data
    loader = data.get("loader")
    if not isinstance(loader, str):
        raise _fail(path, "loader", "the dataset's kind (a string)", loader)
    kind = get_kind(loader, f"{path}: loader")
    splits = _texts(data, "splits", path, ("test",))
    if not splits:
        raise _fail(path, "splits", "a non-empty list of split names", splits)
    subset = data.get("subset")
    if subset is not None and (not isinstance(subset, dict) or set(subset) != {"per_class", "seed"}
                               or not all(_is_int(v) for v in subset.values())
                               or subset["per_class"] < 1):
        raise DeclarationError(f"{path}: subset must be {{per_class: N, seed: S}} with integers, N >= 1")
    expected = _mapping(data, "expected", path, "a mapping of split to image count")
    for key, value in expected.items():
        if not _is_int(value) or value < 0:
            raise _fail(path, f"expected.{key}", "a non-negative integer", value)
    prompts = _mapping(data, "generation_prompts", path, "a mapping of class name to prompt")
    for key, value in prompts.items():
        if not isinstance(value, str):
            raise _fail(path, f"generation_prompts.{key}", "a string", value)
    return DatasetManifest(
        name=_file_name_matches(data, path, True), loader=loader, splits=splits,
        description=_text(data, "description", path), obtain=_text(data, "obtain", path),
        layout=_text(data, "layout", path), subdir=_text(data, "subdir", path, name),
        class_names=_texts(data, "class_names", path), templates=_texts(data, "templates", path),
        subset=subset, expected={str(k): v for k, v in expected.items()},
        generation_prompts={str(k): v for k, v in prompts.items()},
        prepare=_text(data, "prepare", path), hash=resolved.hash, path=str(path),
        origin=origin, includes=resolved.includes, kind=kind)


# --------------------------------------------------------------------------- scenarios


_SCENARIO_KEYS = {"name", "description", "target", "protocol", "shots", "sessions", "eval_sets",
                  "training", "strategy_training", "validation", "replay", "seeds", "datasets",
                  "head"}


def _validation(data: dict, protocol: str, path: Path) -> dict[str, Any] | None:
    """The `validation:` key: {per_class: V} (few-shot), {fraction: F} (offline), or false /
    none for a scenario without a validation split; absent: `DEFAULT_VALIDATION`."""
    default = DEFAULT_VALIDATION[protocol]
    if "validation" not in data:
        return None if default is None else dict(default)
    value = data["validation"]
    if value is False or value is None or (isinstance(value, str) and value.lower() == "none"):
        return None
    if default is None:
        raise DeclarationError(f"{path}: validation: a {protocol} scenario has no validation "
                               "split yet (leave the key out, or set it to false)")
    few_shot = protocol == "few-shot"
    expected = ("{per_class: V} with an integer V >= 1 (images per class held out of the "
                "training images, never drawn as shots), or false" if few_shot else
                "{fraction: F} with 0 < F < 1 (the share of each class held out of the "
                "training split), or false")
    key = "per_class" if few_shot else "fraction"
    if not isinstance(value, dict) or set(value) != {key}:
        raise _fail(path, "validation", expected, value)
    amount = value[key]
    if few_shot and (not _is_int(amount) or amount < 1):
        raise _fail(path, "validation.per_class", "an integer >= 1", amount)
    if not few_shot and (isinstance(amount, bool) or not isinstance(amount, (int, float))
                         or not 0 < amount < 1):
        raise _fail(path, "validation.fraction", "a number with 0 < F < 1", amount)
    return {key: amount}


def _replay(data: dict, target: str, path: Path) -> tuple[str, ...]:
    """The `replay:` key: a non-empty list of distinct dataset names (their `train` splits are
    replayed by a strategy that asks for replay), never the target itself; absent: ()."""
    if data.get("replay") is None:
        return ()
    names = _texts(data, "replay", path)
    if not names:
        raise _fail(path, "replay", "a non-empty list of dataset names (their train splits are "
                    "replayed)", data["replay"])
    if len(set(names)) != len(names):
        raise _fail(path, "replay", "a list of distinct dataset names", data["replay"])
    if target in names:
        raise DeclarationError(f"{path}: replay names the target '{target}': replayed data is "
                               "clean pretraining-world data, never the target's own training "
                               "split", hint="name the datasets the model knew before, e.g. "
                               "`replay: [proxy-clean, proxy-generic]`")
    return names


def _stream_datasets(data: dict, path: Path) -> tuple[str, ...]:
    """A multi-dataset scenario's `datasets:` (training order): two or more distinct declared
    datasets; an unknown name is refused with the closest declared ones."""
    names = _texts(data, "datasets", path)
    if len(names) < 2:
        raise _fail(path, "datasets", "a list of two or more dataset names (the training order, "
                    "one session each)", data.get("datasets"))
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DeclarationError(f"{path}: datasets names {', '.join(repeated)} twice (each "
                               "dataset is one session)")
    catalog = _catalog(DATASETS)
    for name in names:
        if name not in catalog:
            raise DeclarationError(f"{path}: datasets: " + unknown_name_message(
                "dataset", name, catalog), hint="`clbench list datasets` shows them all")
    return names


def _protocol_keys(data: dict, protocol: str, path: Path) -> tuple[str, tuple[str, ...], str]:
    """(target, datasets, head) by protocol: a multi-dataset stream names its datasets (the
    first is its `target`, for what reads one) and the head it evaluates them with; the others
    name their target and take neither key."""
    if protocol == MULTI_DATASET:
        if "target" in data:
            raise DeclarationError(f"{path}: a multi-dataset scenario has no 'target': every "
                                   "dataset of 'datasets' is trained in turn and evaluated after "
                                   "every session")
        if "sessions" in data:
            raise DeclarationError(f"{path}: a multi-dataset scenario has no 'sessions': each "
                                   "dataset of 'datasets' is one session")
        datasets = _stream_datasets(data, path)
        head = _text(data, "head", path, TASK_HEAD)
        if head not in (TASK_HEAD, TASK_AGNOSTIC_HEAD):
            raise _fail(path, "head", f"'{TASK_HEAD}' (each dataset among its own classes, MTIL) "
                        f"or '{TASK_AGNOSTIC_HEAD}' (among every dataset's classes, X-TAIL)",
                        data["head"])
        return datasets[0], datasets, head
    for key in ("datasets", "head"):
        if key in data:
            raise DeclarationError(f"{path}: '{key}' belongs to a multi-dataset scenario "
                                   f"(`protocol: {MULTI_DATASET}`), not a {protocol} one")
    if protocol == BASE_TO_NEW and "sessions" in data:
        raise DeclarationError(f"{path}: a base-to-new scenario has no 'sessions': it trains one "
                               "session on the base half of the target's classes")
    if "target" not in data:
        raise DeclarationError(f"{path}: missing 'target' (the dataset the stream is made of)")
    return _text(data, "target", path), (), TASK_HEAD


def load_scenario_manifest(name_or_path: str) -> ScenarioManifest:
    candidate = Path(name_or_path)
    if name_or_path.endswith((".yaml", ".yml")):
        if not candidate.is_file():
            raise UserError(f"scenario file not found: {name_or_path}",
                            hint="pass a scenario name (`clbench list scenarios`) or the path "
                            "of a scenario YAML file")
        path, origin, from_catalog = candidate, "file", False
    else:
        catalog = _catalog(SCENARIOS)
        if name_or_path not in catalog:
            raise UserError(unknown_name_message("scenario", name_or_path, catalog),
                            hint="`clbench list scenarios` shows them all")
        (path, origin), from_catalog = catalog[name_or_path], True
    resolved = resolve(path, SCENARIOS, _SCENARIO_KEYS)
    data = resolved.data
    protocol = data.get("protocol", "few-shot")
    if protocol not in PROTOCOLS:
        raise DeclarationError(f"{path}: protocol must be one of {', '.join(PROTOCOLS)}")
    target, datasets, head = _protocol_keys(data, protocol, path)
    sessions = data.get("sessions", {}) or {}
    if not isinstance(sessions, dict):
        raise DeclarationError(f"{path}: 'sessions' must be a mapping with 'sizes' and 'order'")
    _check_keys(sessions, {"sizes", "order", "by"}, f"{path}: sessions")
    session_by = sessions.get("by", "class")
    if session_by not in ("class", "group"):
        raise DeclarationError(f"{path}: sessions.by must be 'class' or 'group'")
    order = sessions.get("order", "dataset")
    if isinstance(order, list):
        _texts(sessions, "order", path)  # every entry a class (or group) name
    elif order not in ("dataset", "seeded"):
        raise _fail(path, "sessions.order", "'dataset', 'seeded' or a list of names", order)
    if session_by == "group" and not isinstance(order, list):
        raise DeclarationError(f"{path}: sessions.by: group needs sessions.order to list the groups")
    shots = data.get("shots")
    if protocol in (FEW_SHOT, BASE_TO_NEW) and shots is None:
        raise DeclarationError(f"{path}: a {protocol} scenario needs 'shots' (a positive "
                               "integer)")
    if shots is not None and (not _is_int(shots) or shots < 1):
        raise _fail(path, "shots", "a positive integer", shots)
    sizes = sessions.get("sizes", []) or []
    if not isinstance(sizes, list):
        raise _fail(path, "sessions.sizes", "a list of positive integers", sizes)
    for i, size in enumerate(sizes):
        if not _is_int(size) or size < 1:
            raise _fail(path, f"sessions.sizes[{i}]", "a positive integer", size)
    if protocol == "few-shot" and not sizes:
        raise DeclarationError(f"{path}: a few-shot scenario needs sessions.sizes, e.g. [4, 4, 4]")
    training = data.get("training", {}) or {}
    if not isinstance(training, dict):
        raise DeclarationError(f"{path}: 'training' must be a mapping")
    per_strategy = data.get("strategy_training", {}) or {}
    if not isinstance(per_strategy, dict) or not all(
            isinstance(v, dict) and isinstance(v.get(STRATEGY_PARAMS_KEY, {}), dict)
            for v in per_strategy.values()):
        raise DeclarationError(f"{path}: 'strategy_training' must map strategy names to training "
                               "keys (and, under 'strategy:', strategy parameters), e.g. "
                               "{lorsu: {lr: 3.0e-4}, llu: {strategy: {lr: 1.0e-3}}}")
    seeds = data.get("seeds", DEFAULT_SEEDS)
    if not _is_int(seeds) or seeds < 1:
        raise _fail(path, "seeds", "a positive integer (how many seeds a result needs)", seeds)
    return ScenarioManifest(
        name=_file_name_matches(data, path, from_catalog), target=target, protocol=protocol,
        eval_sets=_texts(data, "eval_sets", path), shots=shots, session_sizes=tuple(sizes),
        class_order=order, session_by=session_by, training=dict(training),
        strategy_training={str(k): dict(v) for k, v in per_strategy.items()},
        description=_text(data, "description", path),
        validation=_validation(data, protocol, path), replay=_replay(data, target, path),
        seeds=seeds, datasets=datasets, head=head, hash=resolved.hash, path=str(path),
        origin=origin, includes=resolved.includes, declaration=data)
