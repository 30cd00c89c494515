"""`clbench sweep`: a grid of runs from one YAML file, expanded, checked, matched with the store.

A sweep file names the axes of a grid: scenarios, strategies (names, presets, or mappings with
parameters and a grid of their own), models, seeds, a cartesian `grid` over any config keys and
fixed keys (`set`); and how to execute it (`executor`: `local` or `slurm`,
`clbench.sweep.executors`). `load_sweep` reads it and checks everything before anything runs:
every key (an unknown one answers with the closest names), every strategy through the
registry, every scenario through the manifests, every expanded run through the same resolution
as `clbench run` (`clbench.run.settings.resolve_for_scenario`, then the strategy's parameters and
limits on the architecture), and the executor's options through submitit.

Each expanded run (`RunSpec`) carries its raw config, which a worker resolves exactly as `clbench
run --config` would, and its *identity*: the six fields `Store.find_duplicate` compares (config
hash, scenario manifest hash, model architecture, pretrained tag, checkpoint sha256, seed),
computed here without loading weights the way the runner computes them (`identity`). A run of
the sweep counts as done when the store holds a completed run with that identity that is not a
tuning trial (`clbench.sweep.status`); only the others are executed.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clbench.errors import UserError
from clbench.names import closest

SWEEP_KEYS = ("name", "scenarios", "strategies", "models", "seeds", "grid", "set", "db",
              "data_root", "executor")
ENTRY_KEYS = ("name", "grid", "set")  # in a strategy mapping, besides strategy parameters
MODEL_KEYS = ("arch", "pretrained", "checkpoint")
EXECUTOR_KINDS = ("local", "slurm")
LOCAL_KEYS = ("kind", "workers", "threads", "folder")
# config keys with an axis of their own: a grid or `set` entry for them would fight the axis
AXIS_KEYS = {"scenario": "scenarios:", "seed": "seeds:", "model": "models:",
             "strategy.name": "strategies:", "strategy": "strategies:"}
DEFAULT_FOLDER = "sweep-logs"
SWEEP_HINT = ("a sweep file has: name, scenarios, strategies, models, seeds, grid, set, db, "
              "data_root, executor (docs/sweeps.md)")


# --------------------------------------------------------------------------- data


@dataclass
class RunSpec:
    """One expanded run of a sweep: what it is called, its raw config, its identity."""

    index: int
    key: str  # stable name for its log and record files: <strategy>-s<seed>-<identity hash>
    strategy: str  # the strategy entry as written, with its parameters (`lora rank=8`)
    setting: str  # the grid point (`training.lr=0.0001 strategy.rank=8`), '' without a grid
    scenario: str  # the scenario's name
    model: str  # arch, or arch@tag
    seed: int
    raw: dict[str, Any]  # the raw config: `clbench run --config` of this mapping is this run
    identity: dict[str, Any]  # the fields Store.find_duplicate compares

    def label(self) -> str:
        return " ".join(p for p in (self.strategy, self.setting, f"seed {self.seed}") if p)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSpec:
        return cls(**data)


@dataclass
class ExecutorSpec:
    kind: str  # local | slurm
    folder: Path  # the sweep's log folder: per run a log and a record
    workers: int = 1  # local
    threads: int | None = None  # local: intra-op threads per worker (None: cores // workers)
    options: dict[str, Any] = field(default_factory=dict)  # slurm: AutoExecutor parameters
    max_num_timeout: int = 3  # slurm: requeues after timeout or preemption
    python: str | None = None  # slurm: the command that starts python on a node
    raw: dict[str, Any] = field(default_factory=dict)  # slurm: the keys as the file gives them

    def records(self) -> Path:
        """Where per-run logs and records go (for slurm, submitit's job folders go under it
        unless `folder` has a %j of its own: then records go to the part before it)."""
        parts = self.folder.parts
        for i, part in enumerate(parts):
            if "%" in part:
                return Path(*parts[:i]) if i else Path(".")
        return self.folder


@dataclass
class Sweep:
    path: Path
    name: str
    runs: list[RunSpec]
    executor: ExecutorSpec
    db: str | None = None
    data_root: str | None = None
    duplicates: int = 0  # expanded runs dropped as identical to an earlier one
    configs: dict[str, Any] = field(default_factory=dict)  # key -> resolved RunConfig
    plugins: dict[str, Any] = field(default_factory=dict)  # key -> strategy plugin (checks)


# --------------------------------------------------------------------------- reading


def _where(path: Path, key: str) -> str:
    return f"sweep file {path}: {key}"


def _unknown_key(path: Path, where: str, key: Any, known: tuple[str, ...]) -> UserError:
    near = closest(str(key), known)
    did = f" (did you mean {', '.join(repr(n) for n in near)}?)" if near else ""
    place = f"{where}: " if where else ""
    return UserError(f"sweep file {path}: {place}unknown key {key!r}{did}",
                     hint=f"known keys{' of ' + where if where else ''}: {', '.join(known)}")


def _list(path: Path, data: dict, key: str, required: bool = False) -> list | None:
    if key not in data or data[key] is None:
        if required:
            raise UserError(f"sweep file {path}: no `{key}:` given",
                            hint=f"list them, e.g. `{key}: [...]` ({SWEEP_HINT})")
        return None
    value = data[key]
    if not isinstance(value, list):
        value = [value]
    if not value:
        raise UserError(f"{_where(path, key)} is empty: the sweep would run nothing",
                        hint="list at least one" + ("" if required else
                                                      f", or leave `{key}:` out"))
    return value


def _dotted(path: Path, where: str, mapping: Any) -> dict[str, Any]:
    """A `set:`/`grid:` mapping with nested sections flattened to dotted keys."""
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise UserError(f"{_where(path, where)}: expected a mapping of config keys, got "
                        f"{mapping!r}", hint="e.g. `training.lr: [1.0e-4, 3.0e-4]`")
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        key = str(key)
        # nested sections (`training: {lr: ...}`) flatten; a strategy's or plugin's mapping
        # value at a leaf stays whole
        if isinstance(value, dict) and key in ("training", "model", "plugin", "strategy") \
                and value:
            for sub, inner in _dotted(path, f"{where}.{key}", value).items():
                out[f"{key}.{sub}"] = inner
        else:
            out[key] = value
    for key in out:
        top = key.split(".", 1)[0]
        axis = AXIS_KEYS.get(key) or (AXIS_KEYS[top] if top in ("scenario", "seed", "model")
                                      else None)
        if axis:
            raise UserError(f"{_where(path, where)}: {key} has an axis of its own",
                            hint=f"list its values under `{axis}` instead")
    return out


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{'training.lr': 1e-4} -> {'training': {'lr': 1e-4}}."""
    from clbench.yaml_files import deep_merge

    out: dict[str, Any] = {}
    for key, value in flat.items():
        node: Any = value
        for part in reversed(key.split(".")):
            node = {part: node}
        out = deep_merge(out, node)
    return out


@dataclass
class _Axis:
    key: str
    values: list[Any]


def _grid(path: Path, where: str, mapping: Any) -> list[_Axis]:
    axes = []
    for key, values in _dotted(path, where, mapping).items():
        if not isinstance(values, list):
            values = [values]
        if not values:
            raise UserError(f"{_where(path, where)}.{key}: empty list: the grid would be empty",
                            hint=f"list the values to try, e.g. `{key}: [V1, V2]`, or leave the "
                                 "key out")
        shown = [json.dumps(v, sort_keys=True, default=str) for v in values]
        if len(set(shown)) != len(shown):
            raise UserError(f"{_where(path, where)}.{key}: a value is repeated in {values!r}",
                            hint="each value once")
        axes.append(_Axis(key, values))
    if isinstance(mapping, dict) and not mapping:
        raise UserError(f"{_where(path, where)} is empty: it has no keys",
                        hint="give a key with the values to try (`grid: {training.lr: [1.0e-4, "
                             "3.0e-4]}`), or leave `grid:` out")
    return axes


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


@dataclass
class _Entry:
    strategy: dict[str, Any]  # {name, params...}
    label: str
    grid: list[_Axis]
    fixed: dict[str, Any]  # dotted


def _strategies(path: Path, values: list) -> list[_Entry]:
    from clbench.strategies import registry

    entries = []
    for i, item in enumerate(values):
        where = f"strategies[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise UserError(f"{_where(path, where)}: expected a strategy name or a mapping with "
                            f"a name, got {item!r}",
                            hint="e.g. `- lorsu` or `- {name: lora, rank: 8}`")
        name = item["name"]
        try:
            registry.info(name)
        except UserError as err:
            raise UserError(f"{_where(path, where)}: {err}", hint=err.hint) from None
        params = {k: v for k, v in item.items() if k not in ENTRY_KEYS}
        fixed = _dotted(path, f"{where}.set", item.get("set"))
        label = " ".join([name, *(f"{k}={_shown(v)}" for k, v in params.items()),
                          *(f"{k}={_shown(v)}" for k, v in fixed.items())])
        entries.append(_Entry({"name": name, **params}, label,
                              _grid(path, f"{where}.grid", item.get("grid")), fixed))
    return entries


def _models(path: Path, values: list | None) -> list[dict[str, Any]]:
    if values is None:
        return [{}]  # the config's default model (the embedded proxy)
    models = []
    for i, item in enumerate(values):
        if isinstance(item, str):
            arch, _, tag = item.partition("@")
            item = {"arch": arch, **({"pretrained": tag} if tag else {})}
        if not isinstance(item, dict) or not item.get("arch"):
            raise UserError(f"{_where(path, f'models[{i}]')}: expected an architecture "
                            f"(`ViT-B-16`, `ViT-B-16@openai`) or a mapping with arch, got "
                            f"{item!r}", hint="e.g. `{arch: ViT-L-14, pretrained: openai}`")
        for key in item:
            if key not in MODEL_KEYS:
                raise _unknown_key(path, f"models[{i}]", key, MODEL_KEYS)
        models.append(dict(item))
    return models


def _model_label(model: dict[str, Any]) -> str:
    from clbench.backbones import PROXY_ARCH

    arch = model.get("arch") or PROXY_ARCH
    if model.get("checkpoint"):
        return f"{arch} ({Path(model['checkpoint']).name})"
    return f"{arch}@{model['pretrained']}" if model.get("pretrained") else arch


def _seeds(path: Path, values: list | None) -> list[int] | None:
    if values is None:
        return None
    seeds = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
            raise UserError(f"{_where(path, 'seeds')}: {value!r} is not a seed (an integer in "
                            "[0, 2**32 - 1])", hint="e.g. `seeds: [0, 1, 2]`")
        seeds.append(value)
    if len(set(seeds)) != len(seeds):
        raise UserError(f"{_where(path, 'seeds')}: a seed is repeated in {values!r}",
                        hint="each seed once")
    return seeds


def _positive_int(path: Path, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{_where(path, key)}: expected a whole number >= 1, got {value!r}")
    return value


def _executor(path: Path, data: Any, name: str) -> ExecutorSpec:
    if data is None:
        data = {"kind": "local"}
    if isinstance(data, str):
        data = {"kind": data}
    if not isinstance(data, dict):
        raise UserError(f"{_where(path, 'executor')}: expected a mapping, got {data!r}",
                        hint="e.g. `executor: {kind: local, workers: 2}`")
    kind = data.get("kind", "local")
    if kind not in EXECUTOR_KINDS:
        near = closest(str(kind), EXECUTOR_KINDS)
        did = f" (did you mean {near[0]!r}?)" if near else ""
        raise UserError(f"{_where(path, 'executor.kind')}: unknown executor {kind!r}{did}",
                        hint="executors: local (this machine: workers processes at a time), "
                             "slurm (a SLURM cluster through submitit)")
    folder = Path(str(data.get("folder") or Path(DEFAULT_FOLDER) / name)).expanduser()
    if kind == "local":
        for key in data:
            if key not in LOCAL_KEYS:
                raise _unknown_key(path, "executor (local)", key, LOCAL_KEYS)
        workers = _positive_int(path, "executor.workers", data.get("workers", 1))
        threads = data.get("threads")
        if threads is not None:
            threads = _positive_int(path, "executor.threads", threads)
        return ExecutorSpec("local", folder, workers=workers, threads=threads)
    # the SLURM options are submitit's: `clbench.sweep.executors.check_executor` converts and
    # checks them (this module does not import submitit)
    return ExecutorSpec("slurm", folder, raw={k: v for k, v in data.items()
                                              if k not in ("kind", "folder")})


def read_sweep_file(path: str | Path) -> dict[str, Any]:
    from clbench.yaml_files import read_yaml_mapping

    data = read_yaml_mapping(path, "sweep file")
    for key in data:
        if key not in SWEEP_KEYS:
            raise _unknown_key(Path(path), "", key, SWEEP_KEYS)
    return data


def load_sweep(path: str | Path) -> Sweep:
    """Read, check and expand a sweep file. Every problem is one UserError, raised before
    anything is written: keys, strategies, scenarios, executor options, and every expanded
    run's config (resolved as `clbench run` resolves it, checked against its strategy and the
    model's architecture)."""
    from clbench.config import run_config as cfg
    from clbench.run.runner import preflight
    from clbench.run.settings import resolve_for_scenario
    from clbench.scenarios.manifests import load_scenario_manifest

    path = Path(path)
    data = read_sweep_file(path)
    name = data.get("name") or path.stem
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise UserError(f"{_where(path, 'name')}: {name!r} is not a plain name",
                        hint="letters, digits, '.', '_' and '-' (it names the log folder)")
    scenario_names = _list(path, data, "scenarios", required=True)
    entries = _strategies(path, _list(path, data, "strategies", required=True))
    models = _models(path, _list(path, data, "models"))
    seeds = _seeds(path, _list(path, data, "seeds"))
    grid = _grid(path, "grid", data.get("grid"))
    fixed = _dotted(path, "set", data.get("set"))
    for key in ("db", "data_root"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise UserError(f"{_where(path, key)}: expected a path or URL, got {data[key]!r}")
    executor = _executor(path, data.get("executor"), name)

    manifests = {}
    for i, scenario in enumerate(scenario_names):
        if not isinstance(scenario, str) or not scenario:
            raise UserError(f"{_where(path, f'scenarios[{i}]')}: expected a scenario name or "
                            f"YAML path, got {scenario!r}",
                            hint="`clbench list scenarios` lists the names")
        try:
            manifests[scenario] = load_scenario_manifest(scenario)
        except UserError as err:
            raise UserError(f"{_where(path, f'scenarios[{i}]')}: {err}", hint=err.hint) from None

    sweep = Sweep(path, name, [], executor, db=data.get("db"),
                  data_root=data.get("data_root"))
    seen: set[str] = set()
    index = 0
    for scenario, manifest in manifests.items():
        for model in models:
            for entry in entries:
                axes = {a.key: a for a in grid}
                axes.update({a.key: a for a in entry.grid})  # the entry's own grid wins
                keys = list(axes)
                for point in itertools.product(*(axes[k].values for k in keys)):
                    settings = dict(zip(keys, point))
                    for seed in seeds if seeds is not None else range(manifest.seeds):
                        # later wins: the sweep's `set`, the strategy entry (its parameters,
                        # its `set`), the grid point
                        raw_layers = [{"scenario": scenario, "seed": seed,
                                       **({"model": model} if model else {})}, _nest(fixed),
                                      {"strategy": dict(entry.strategy)}, _nest(entry.fixed),
                                      _nest(settings)]
                        where = (f"{entry.label} on {manifest.name}"
                                 + (f" with {_model_label(model)}" if model else "")
                                 + (f", {_label(settings)}" if settings else "")
                                 + f", seed {seed}")
                        try:
                            raw = cfg.assemble(raw_layers)
                            config = resolve_for_scenario(copy.deepcopy(raw), manifest)
                            preflight(checkable(config, executor), scenario=False)
                            resolved, plugin = _as_stored(config)
                            ident = identity(resolved, manifest)
                        except UserError as err:
                            raise UserError(f"sweep file {path}: run {where}: {err}",
                                            hint=err.hint) from None
                        key = run_key(entry.strategy["name"], seed, ident)
                        if key in seen:
                            sweep.duplicates += 1
                            continue
                        seen.add(key)
                        sweep.runs.append(RunSpec(
                            index, key, entry.label, _label(settings), manifest.name,
                            _model_label(model), seed, raw, ident))
                        sweep.configs[key] = config
                        sweep.plugins[key] = plugin
                        index += 1
    return sweep


def _label(settings: dict[str, Any]) -> str:
    return " ".join(f"{k}={_shown(v)}" for k, v in settings.items())


def check_data(sweep: Sweep, data_root: str | None) -> None:
    """The scenario and data checks of `clbench run` (datasets present, splits, replay data),
    once per distinct scenario, control sets and replay need of the sweep."""
    from clbench.run.runner import preflight

    checked = set()
    for run in sweep.runs:
        config = sweep.configs[run.key]
        group = (config.scenario, tuple(config.controls or ()),
                 bool(getattr(sweep.plugins[run.key], "needs_replay", False)))
        if group in checked:
            continue
        checked.add(group)
        try:
            preflight(checkable(config, sweep.executor), data_root=data_root)
        except UserError as err:
            raise UserError(f"sweep file {sweep.path}: run {run.label()} on {run.scenario}: "
                            f"{err}", hint=err.hint) from None


def checkable(config, executor: ExecutorSpec):
    """`config` as this machine can check it: a slurm sweep's CUDA device is the nodes', so
    where this machine (a login node) has none, the checks run on the CPU instead."""
    if executor.kind == "slurm" and str(config.device).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            checked = copy.deepcopy(config)
            checked.device = "cpu"
            return checked
    return config


# --------------------------------------------------------------------------- identity


def _as_stored(config):
    """The config as the runner hashes and stores it: with the loss the strategy prescribes
    (`effective_training`) and its added plugins resolved to their full arguments."""
    from clbench.strategies import registry
    from clbench.strategies.base import effective_training
    from clbench.training import extra_plugins

    plugin = registry.create(config.strategy, config.strategy_params)
    resolved = copy.deepcopy(config)
    resolved.training = effective_training(config.training, [plugin])
    if config.plugins:
        resolved.plugins = [e.key for e in extra_plugins.create_all(config.plugins)]
    return resolved, plugin


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _checkpoint_sha(path: Path) -> str:
    from clbench.hashing import file_sha256

    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = file_sha256(path)
    return _SHA_CACHE[key]


def identity(config, manifest) -> dict[str, Any]:
    """The fields `Store.find_duplicate` compares, as the runner will store them for `config`
    (already in its stored form, `_as_stored`), computed without loading weights:
    `load_model` records the canonical architecture, the pretrained tag unless a checkpoint
    file is given, and the sha256 of the file it loads (a given checkpoint, or the
    architecture's committed one when no tag is given; none for a tag)."""
    from clbench.models.configs import DEFAULT_CHECKPOINTS, canonical_arch

    model = config.model
    arch = canonical_arch(model.arch)
    sha = None
    if model.checkpoint or not model.pretrained:
        default = DEFAULT_CHECKPOINTS.get(arch, (None, None))[0]
        file = Path(model.checkpoint).expanduser() if model.checkpoint else default
        if file is not None:
            if not file.is_file():
                raise UserError(f"model.checkpoint: no checkpoint file at {file}",
                                hint="give the path of a checkpoint file (.pt, .bin, "
                                     ".safetensors), or a pretrained tag")
            sha = _checkpoint_sha(file)
    return {"config_hash": config.hash(), "scenario_manifest_hash": manifest.hash or None,
            "model_arch": arch, "model_pretrained": None if model.checkpoint else
            model.pretrained, "model_checkpoint_sha256": sha, "seed": config.seed}


def run_key(strategy: str, seed: int, ident: dict[str, Any]) -> str:
    from clbench.hashing import canonical_hash

    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", strategy)
    return f"{slug}-s{seed}-{canonical_hash(ident)[:10]}"
