"""`clbench tune`: choose a strategy's settings on validation data only.

The grid (`--grid training.lr=1e-5,3e-5,1e-4`, repeatable) is expanded into its cartesian
product, first key slowest. Every point runs through the same runner as `clbench run`, once per
tuning seed, with `evaluate_on="validation"`: the target is evaluated on its validation split
(carved from its training data, disjoint from the shots: `clbench.scenarios.stream`) and each
control on its dataset's `val` split; no test split is loaded. Every trial is stored as a run
marked `purpose: tuning` (in its config and summary), which the leaderboard never ranks.

Rule (declared in `RULE`): the point with the highest mean balanced score
(`clbench.metrics.balanced_score`: target change + mean control change) over the tuning seeds;
a tie goes to the earlier grid point. With `--max-control-drop PTS` (`constrained_rule`): among
the points whose worst control change (mean over the seeds) is no worse than -PTS points, the
highest mean target change; for a bound such as "the most a method can gain on the target while
no control drops more than 3 points" (the joint-replay reference on the offline proxy
scenarios). Every point is validated (keys, ranges, the strategy's limits on the architecture,
the scenario's validation split) before the first trial is stored.

The chosen point is printed as what to paste (`paste_block`): a `strategy_training` entry with
every training key and strategy parameter it ran with that the scenario alone would not give
(the grid's and those fixed with `--set`), and the `clbench run` command carrying what a
scenario cannot hold (`--plugin` and its arguments, the model, the controls, the device): the
pasted setting runs with the chosen point's config hash.
"""

from __future__ import annotations

import itertools
import shlex
from dataclasses import dataclass, field
from statistics import fmean, pstdev
from typing import Any

import yaml

from clbench.errors import UserError
from clbench.metrics import TUNING, balanced_score

RULE = ("highest mean balanced score (target change + mean control change, in points, on "
        "validation data) over the tuning seeds; a tie goes to the earlier grid point")

TUNABLE_SECTIONS = ("training", "strategy")
PURPOSE = TUNING


def constrained_rule(max_control_drop: float) -> str:
    return (f"highest mean target change among the points whose worst control change is no "
            f"worse than -{max_control_drop:g} points (on validation data, mean over the tuning "
            f"seeds); a tie goes to the earlier grid point")


@dataclass(frozen=True)
class Axis:
    key: str  # dotted config key, e.g. training.lr
    values: tuple[str, ...]  # as typed


@dataclass
class Point:
    index: int
    settings: dict[str, str]  # key -> value as typed
    config: Any = None  # the RunConfig of the first seed as resolved (before a run of it)
    configs: dict[int, Any] = field(default_factory=dict)  # seed -> RunConfig
    scores: dict[int, dict] = field(default_factory=dict)  # seed -> {balanced, target, ...}

    def mean(self, key: str) -> float | None:
        values = [s[key] for s in self.scores.values() if s.get(key) is not None]
        return fmean(values) if values else None

    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.settings.items())


GRID_HINT = ("pass --grid KEY=V1,V2,... with a training.* or strategy.* key, e.g. "
             "--grid training.lr=1e-5,3e-5,1e-4 (repeat --grid for more keys)")


def parse_grid(specs: list[str] | None) -> list[Axis]:
    """`["training.lr=1e-5,3e-5", "strategy.rank=8,32"]` -> axes; refuses an empty grid, an
    empty value, a repeated key or a key outside the tunable sections."""
    if not specs:
        raise UserError("no grid given: tune needs at least one --grid KEY=V1,V2,...",
                        hint=GRID_HINT)
    axes: list[Axis] = []
    for spec in specs:
        if "=" not in spec:
            raise UserError(f"--grid {spec!r}: expected KEY=V1,V2,...", hint=GRID_HINT)
        key, raw = (part.strip() for part in spec.split("=", 1))
        values = tuple(v.strip() for v in raw.split(","))
        if not key:
            raise UserError(f"--grid {spec!r}: no key before '='", hint=GRID_HINT)
        if not raw or any(not v for v in values):
            raise UserError(f"--grid {key}: empty value in {raw!r}",
                            hint=f"list the values to try, e.g. --grid {key}=V1,V2")
        section = key.split(".", 1)[0]
        if section not in TUNABLE_SECTIONS or "." not in key or key == "strategy.name":
            raise UserError(f"--grid {key}: only training.<key> and strategy.<param> keys are "
                            "tuned", hint="seeds are given with --seeds; the strategy, scenario "
                            "and model are fixed per tune (`clbench list strategies -v` lists "
                            "each strategy's parameters)")
        if any(a.key == key for a in axes):
            raise UserError(f"--grid {key}: given twice",
                            hint=f"list every value of {key} in one --grid {key}=V1,V2,...")
        if len(set(values)) != len(values):
            raise UserError(f"--grid {key}: a value is repeated in {raw!r}",
                            hint="each value once")
        axes.append(Axis(key, values))
    return axes


def expand(axes: list[Axis]) -> list[Point]:
    """The cartesian product, first axis slowest (the order the table and ties follow)."""
    combos = itertools.product(*(a.values for a in axes))
    return [Point(i, dict(zip([a.key for a in axes], combo)))
            for i, combo in enumerate(combos)]


def point_layer(point: Point) -> dict[str, Any]:
    from clbench.config.run_config import parse_set_options

    return parse_set_options([f"{k}={v}" for k, v in point.settings.items()])


def point_config(base: list[dict[str, Any]], seed: int, point: Point, manifest) -> Any:
    """The RunConfig of `point` at `seed`: the tune's fixed layers (flags, --set), the seed and
    the point's settings, resolved for the scenario, its strategy parameters typed."""
    from clbench.config import run_config as cfg
    from clbench.run.settings import resolve_for_scenario

    config = resolve_for_scenario(cfg.assemble([*base, {"seed": seed}, point_layer(point)]),
                                  manifest)
    config.strategy_params = typed_params(config)
    return config


def typed_params(config: Any) -> dict[str, Any]:
    """The config's strategy parameters as the strategy's config class types them: a value as
    typed is read as YAML (`alpha=8` an int, `lr=3e-3` a string) and the config hash sees that
    type, so a tuned run and the block it prints (typed: 8.0, 0.003) must both carry these."""
    from clbench.strategies import registry

    if not config.strategy_params:
        return {}
    typed = registry.resolved_params(registry.create(config.strategy, config.strategy_params))
    return {key: typed[key] for key in config.strategy_params}


def score(summary: dict) -> dict:
    changes = [c.get("change") for c in (summary.get("controls") or {}).values()]
    known = [c for c in changes if c is not None]
    return {"balanced": balanced_score(summary.get("target_gain"), changes),
            "target_gain": summary.get("target_gain"),
            "control_change": fmean(known) if known else None,
            "worst_control": min(known) if known else None}


def _highest(points: list[Point], key: str) -> Point:
    """The point with the highest mean `key`; ties (and missing scores) keep the earlier one."""
    best = points[0]
    for point in points[1:]:
        mine, theirs = point.mean(key), best.mean(key)
        if mine is not None and (theirs is None or mine > theirs):
            best = point
    return best


def choose(points: list[Point], max_control_drop: float | None = None) -> Point:
    """The declared rule (`RULE`), or with `max_control_drop` (points) `constrained_rule`;
    refuses when no point keeps its controls within the bound."""
    if max_control_drop is None:
        return _highest(points, "balanced")
    floor = -max_control_drop / 100
    within = [p for p in points if p.mean("worst_control") is not None
              and p.mean("worst_control") >= floor - 1e-12]
    if not within:
        kept = _highest(points, "worst_control")
        raise UserError(
            f"no grid point kept every control within -{max_control_drop:g} points on "
            f"validation data (the least forgetting: {kept.label()}, worst control "
            f"{_pts(kept.mean('worst_control'))} points); the trials are stored",
            hint="widen the grid toward what forgets less (a lower learning rate, more "
                 "replay), or tune without --max-control-drop")
    return _highest(within, "target_gain")


def _pts(value: float | None, signed: bool = True) -> str:
    if value is None:
        return "-"
    return f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"


def results_table(points: list[Point], chosen: Point, seeds: list[int]) -> str:
    from clbench.run.report import table

    keys = list(points[0].settings)
    rows = []
    for p in points:
        balanced = [s["balanced"] for s in p.scores.values() if s["balanced"] is not None]
        spread = f" ± {100 * pstdev(balanced):.1f}" if len(balanced) > 1 else ""
        rows.append(["*" if p is chosen else "", *p.settings.values(),
                     _pts(p.mean("target_gain")), _pts(p.mean("control_change")),
                     _pts(p.mean("worst_control")), _pts(p.mean("balanced")) + spread,
                     len(p.scores)])
    return table(["", *keys, "target Δ", "control Δ", "worst control Δ", "balanced (pts)",
                  "seeds"], rows)


def paste_block(chosen: Point, baseline: Any, command: str, seeds: list[int],
                rule: str = RULE, named: tuple[str, ...] = ()) -> str:
    """Everything the chosen point ran with, to paste: a `strategy_training` entry for the
    scenario YAML (training keys, and strategy parameters under `strategy:`) and, as a
    comment, the `clbench run` command with the settings a scenario cannot hold (model,
    controls, device, added plugins), so that the pasted setting runs as the chosen point ran.

    `chosen.config` is the point's config as resolved (before a run resolves its plugins);
    `baseline` the config the scenario alone gives the strategy (its `training:` block, no
    `strategy_training` entry): a training key is in the entry when the point's value differs
    from it or when it is in `named` (the keys the grid and `--set` name)."""
    import dataclasses

    config = chosen.config
    entry: dict[str, Any] = {
        f.name: getattr(config.training, f.name) for f in dataclasses.fields(config.training)
        if f.name in named or getattr(config.training, f.name) != getattr(baseline.training,
                                                                           f.name)}
    if config.strategy_params:  # typed already (`point_config`)
        entry["strategy"] = dict(config.strategy_params)
    lines = [f"# chosen on validation data by: {command}",
             f"# rule: {rule} (seeds {', '.join(map(str, seeds))}); validation balanced score "
             f"{_pts(chosen.mean('balanced'))} pts",
             f"# run it with: {run_command(config)}",
             yaml.safe_dump({"strategy_training": {config.strategy: entry}},
                            default_flow_style=None, sort_keys=False).rstrip()]
    return "\n".join(lines)


def run_command(config: Any) -> str:
    """`clbench run` with the settings of `config` that a scenario's `strategy_training` entry
    cannot hold: the model, the controls, the device and the added plugins with their
    arguments (the seed is the run's own)."""
    from clbench.config.plugin_specs import class_name
    from clbench.config.run_config import ModelConfig

    argv = ["clbench", "run", "--strategy", config.strategy, "--scenario", config.scenario]
    default_model = ModelConfig()
    for key, flag in (("arch", "--model"), ("pretrained", "--pretrained"),
                      ("checkpoint", "--checkpoint")):
        value = getattr(config.model, key)
        if value != getattr(default_model, key):
            argv += [flag, str(value)]
    if config.controls is not None:
        argv += ["--controls", ",".join(config.controls)]
    if config.device != "auto":
        argv += ["--device", config.device]
    for plugin in config.plugins:
        argv += ["--plugin", plugin["class"]]
        argv += [arg for key, value in plugin["args"].items()
                 for arg in ("--set", f"plugin.{class_name(plugin['class'])}.{key}="
                             f"{_yaml_value(value)}")]
    return shlex.join(argv)


def _yaml_value(value: Any) -> str:
    """`value` as `--set` reads it back (YAML, one line): 1e-05 as 1.0e-05, a string quoted
    where YAML would read it as something else."""
    text = yaml.safe_dump(value, default_flow_style=True, width=2**31).strip()
    return text[:-len("\n...")].strip() if text.endswith("\n...") else text


def run_tune(args, argv: list[str]) -> int:
    """The `clbench tune` command (see `cli.build_parser`)."""
    from clbench.config import run_config as cfg
    from clbench.scenarios.manifests import load_scenario_manifest, training_for
    from clbench.store import LazyStore, resolve_db_url

    axes = parse_grid(args.grid)
    max_drop = getattr(args, "max_control_drop", None)
    if max_drop is not None and not max_drop > 0:
        raise UserError(f"--max-control-drop {max_drop:g}: expected a positive number of points",
                        hint="for example --max-control-drop 3 (no control may lose more "
                             "than 3 points)")
    rule = RULE if max_drop is None else constrained_rule(max_drop)
    if not args.strategy:
        raise UserError("no strategy given", hint="pass --strategy NAME (`clbench list "
                        "strategies`)")
    if not args.scenario:
        raise UserError("no scenario given", hint="pass --scenario NAME (`clbench list "
                        "scenarios`)")
    seeds = list(dict.fromkeys(args.seeds if args.seeds else [0]))
    flags: dict[str, Any] = {"strategy": {"name": args.strategy}, "scenario": args.scenario}
    if args.device:
        flags["device"] = args.device
    if args.controls:
        flags["controls"] = args.controls
    fixed = cfg.parse_set_options(args.overrides)
    base = [flags, fixed]
    manifest = load_scenario_manifest(args.scenario)
    points = expand(axes)
    command = "clbench " + shlex.join(argv)

    from clbench.run.runner import preflight, run

    # every point and seed is checked before anything is stored: keys and ranges first, then
    # the scenario's validation data (the same for every point of a seed)
    for point in points:
        for seed in seeds:
            config = point_config(base, seed, point, manifest)
            if seed == seeds[0]:
                point.config = config
            preflight(config, data_root=args.data_root, scenario=False)
            point.configs[seed] = config
    for seed in seeds:
        preflight(points[0].configs[seed], data_root=args.data_root, evaluate_on="validation")
    url = resolve_db_url(args.db)
    open_store = LazyStore(url)  # checked now; created once a trial passes every check

    grid = {a.key: list(a.values) for a in axes}
    total = len(points) * len(seeds)
    print(f"tune {args.strategy} on {manifest.name}: {len(points)} grid point(s) x "
          f"{len(seeds)} seed(s) = {total} run(s), scored on validation data only")
    trial = 0
    for point in points:
        for seed in seeds:
            trial += 1
            extra = {"tuning": {"command": command, "grid": grid, "point": point.settings,
                                "rule": rule}}
            result = run(point.configs[seed], open_store, data_root=args.data_root,
                         progress=not args.no_progress, quiet=True,
                         evaluate_on="validation", purpose=PURPOSE, extra_config=extra)
            point.scores[seed] = score(result.summary)
            s = point.scores[seed]
            print(f"  [{trial}/{total}] {point.label()} seed {seed}: balanced "
                  f"{_pts(s['balanced'])} (target {_pts(s['target_gain'])}, controls "
                  f"{_pts(s['control_change'])}) run {result.run_id[:12]}", flush=True)
    chosen = choose(points, max_drop)
    print()
    print(results_table(points, chosen, seeds))
    print(f"\nchosen: {chosen.label()} ({rule})\n")
    # what the scenario alone gives the strategy: the entry holds every training key that
    # differs from it (those --set and the grid name, and a strategy_training entry's)
    baseline = cfg.resolve(cfg.assemble([flags]), training_for(manifest))
    named = tuple(sorted({*(k.split(".", 1)[1] for k in chosen.settings
                            if k.startswith("training.")), *(fixed.get("training") or {})}))
    print(paste_block(chosen, baseline, command, seeds, rule, named))
    return 0
