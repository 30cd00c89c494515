"""Tune every strategy on validation data, then run it on several seeds and tabulate.

    python scripts/compare_strategies.py tune --scenario proxy-20shot --db tuning.db \
        --out docs/tuning/proxy-20shot.txt --workers 2
    # paste the printed strategy_training blocks into the scenario's YAML, then
    python scripts/compare_strategies.py compare --scenario proxy-20shot --seeds 0 1 2 \
        --db comparison.db --workers 2

`tune` calls `clbench tune` once per strategy with that strategy's grid (`GRIDS`, below),
which scores every point on the scenario's validation split only and prints the chosen setting
as a ready-to-paste `strategy_training` entry with its command. `compare` calls `clbench run`
per strategy and seed (the scenario's declared settings apply, so what runs is what the YAML
says) and prints one markdown table from the stored runs: mean ± std over seeds. `compare`
resumes: a (strategy, seed) already completed in `--db` with the settings the scenario declares
now is not run again.
Each worker is a separate process with one intra-op thread (OMP_NUM_THREADS=1), so
`--workers 2` uses two cores without oversubscribing them.

The comparison is also a sweep file: `clbench sweep sweeps/proxy-comparison.yaml` runs every
strategy of `COMPARED` on seeds 0 1 2 with the settings proxy-20shot declares (skipping the runs
comparison.db already holds), and `clbench sweep status sweeps/proxy-comparison.yaml` reports
them; `compare` still prints the markdown table from the stored runs.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

# The strategies compared (presets are named readings of these; see `clbench list strategies`),
# and the grid each is tuned over: parameter-efficient methods move fewer weights and need larger
# rates, so one shared grid would tune some methods only at its edge; where a first grid chose
# its edge on either proxy target, it was widened by a point there. llu is tuned on its
# adapters' own rate; joint-replay also on how much it replays.
GRIDS: dict[str, list[str]] = {
    "fft": ["training.lr=1e-5,3e-5,1e-4"],
    "ln": ["training.lr=1e-4,3e-4,1e-3,3e-3,1e-2"],
    "lora": ["training.lr=3e-5,1e-4,3e-4,1e-3"],
    "dora": ["training.lr=3e-5,1e-4,3e-4,1e-3"],
    # the Selective LoRA paper chooses lambda from {0.1, 0.5, 1.0}: at its lambda = 1 every gate
    # closes on the proxy streams
    "gated-lora": ["training.lr=3e-5,1e-4,3e-4,1e-3", "strategy.lam=0.1,0.5,1.0"],
    "gated-dora": ["training.lr=3e-5,1e-4,3e-4,1e-3", "strategy.lam=0.1,0.5,1.0"],
    "spu": ["training.lr=1e-4,3e-4,1e-3"],
    "lorsu": ["training.lr=3e-5,1e-4,3e-4,1e-3"],
    "llu": ["strategy.lr=3e-5,1e-4,3e-4,1e-3,3e-3,1e-2"],
    "joint-replay": ["training.lr=3e-6,1e-5,3e-5,1e-4,3e-4", "strategy.replay_ratio=1,3"],
}
COMPARED = ["zeroshot", *GRIDS]


def clbench(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "clbench", *args], env=env, text=True,
                          capture_output=True)


TRIAL = re.compile(r"\[\d+/\d+\] (?P<point>.+) seed \d+: balanced (?P<balanced>\S+) "
                   r"\(target (?P<target>\S+), controls (?P<controls>\S+)\)")


def tuning_rows(strategy: str, report: str) -> list[str]:
    """Markdown rows (one per trial, the chosen point in bold) from a `clbench tune` report of
    one seed."""
    chosen = re.search(r"^chosen: (.+?) \(", report, re.M)
    rows = []
    for m in TRIAL.finditer(report):
        mark = " **(chosen)**" if chosen and m["point"] == chosen[1] else ""
        rows.append(f"| {strategy} | `{m['point']}`{mark} | {m['target']} | {m['controls']} | "
                    f"{m['balanced']} |")
    return rows


def tune(args: argparse.Namespace) -> int:
    def one(strategy: str) -> tuple[str, list[str]]:
        grid = [g for spec in GRIDS[strategy] for g in ("--grid", spec)]
        done = clbench(["tune", "--strategy", strategy, "--scenario", args.scenario, *grid,
                        "--db", args.db, "--no-progress"])
        if done.returncode:
            return f"## {strategy}: FAILED\n{done.stderr.strip()}\n", []
        return f"## {strategy}\n{done.stdout.strip()}\n", tuning_rows(strategy, done.stdout)

    with ThreadPoolExecutor(args.workers) as pool:
        reports = list(pool.map(one, [s for s in GRIDS if s in args.strategies]))
    text = "\n".join(report for report, _ in reports)
    text += ("\n| strategy | grid point | target Δ | mean control Δ | balanced |\n"
             "|---|---|---|---|---|\n" + "\n".join(r for _, rows in reports for r in rows) + "\n")
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 0


@cache  # asked once per stored run; the answer depends only on these three
def declared(scenario: str, strategy: str, seed: int) -> dict:
    """The training and strategy settings `clbench run` would use now (the scenario YAML as it
    is), in the form a stored run records them."""
    import dataclasses

    from clbench.run.settings import resolve_for_scenario
    from clbench.scenarios.manifests import load_scenario_manifest
    from clbench.strategies import registry
    from clbench.strategies.base import effective_training

    config = resolve_for_scenario({"strategy": {"name": strategy}, "scenario": scenario,
                                   "seed": seed}, load_scenario_manifest(scenario))
    plugin = registry.create(strategy, config.strategy_params)
    # as the runner stores it: with the loss the strategy prescribes (llu: cross-entropy)
    training = effective_training(config.training, [plugin])
    return {"training": dataclasses.asdict(training),
            "strategy": {"name": strategy, **registry.resolved_params(plugin)}}


def _same(stored: dict, declared_now: dict) -> bool:
    """Whether a stored run's settings are the declared ones, on the keys it records: keys added
    to the config since (speed switches, which change how a run computes, not what) are left
    out, so that runs stored before them still count."""
    return all(stored[k] == v for k, v in declared_now.items() if k in stored) and \
        set(stored) <= set(declared_now)


def completed(db: str, scenario: str) -> dict[tuple[str, int], dict]:
    """Completed non-tuning runs of `scenario` whose settings are the ones the scenario declares
    now, by (strategy, seed): a run made before the YAML changed is not reused."""
    from clbench.store import Store, resolve_db_url

    url = resolve_db_url(db)
    if not Path(url.removeprefix("sqlite:///")).exists():
        return {}
    store = Store(url, create=False)
    out = {}
    for listed in store.list_runs():
        if listed["status"] != "completed" or listed["scenario"] != scenario:
            continue
        run = store.get_run(listed["id"])
        now = declared(scenario, run["strategy"], run["seed"])
        if run["config"].get("purpose", "result") == "result" and all(
                _same(run["config"].get(k) or {}, v) for k, v in now.items()):
            out[(run["strategy"], run["seed"])] = run
    return out


def compare(args: argparse.Namespace) -> int:
    have = completed(args.db, args.scenario)
    todo = [(s, seed) for s in args.strategies for seed in args.seeds if (s, seed) not in have]

    def one(item: tuple[str, int]) -> str:
        strategy, seed = item
        done = clbench(["run", "--strategy", strategy, "--scenario", args.scenario, "--seed",
                        str(seed), "--db", args.db, "--quiet", "--no-progress"])
        status = "ok" if done.returncode == 0 else f"FAILED: {done.stderr.strip()}"
        print(f"{strategy} seed {seed}: {status}", flush=True)
        return status

    with ThreadPoolExecutor(args.workers) as pool:
        list(pool.map(one, todo))
    print(table(completed(args.db, args.scenario), args.strategies, args.seeds))
    return 0


def mean_std(values: list[float | None], scale: float = 100.0, digits: int = 1) -> str:
    values = [v * scale for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(runs: dict[tuple[str, int], dict], strategies: list[str], seeds: list[int]) -> str:
    """Markdown: one row per strategy, mean ± std over seeds (points for changes)."""
    rows = {s: [runs[(s, k)] for k in seeds if (s, k) in runs] for s in strategies}
    first = next(r for rs in rows.values() for r in rs)
    controls = list(first["summary"]["controls"])
    head = ["strategy", "setting", "seeds", "balanced", "target final %", "target Δ",
            *[f"{c} Δ" for c in controls], "avg incr. %", "plasticity", "trainable %",
            "s / run"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, rs in rows.items():
        if not rs:
            continue
        s = [r["summary"] for r in rs]
        training = rs[0]["config"]["training"]
        setting = (f"strategy lr {rs[0]['config']['strategy'].get('lr'):g}" if name == "llu"
                   else "-" if name == "zeroshot" else f"lr {training['lr']:g}")
        row = [name, setting, str(len(rs)), mean_std([x.get("balanced") for x in s]),
               mean_std([x["final_accuracy"] for x in s]),
               mean_std([x["target_gain"] for x in s])]
        row += [mean_std([x["controls"][c]["change"] for x in s]) for c in controls]
        row += [mean_std([x.get("average_incremental_accuracy") for x in s]),
                mean_std([plasticity(r) for r in rs]),
                mean_std([x["trainable_percent"] for x in s], scale=1.0, digits=2),
                mean_std([r["total_time_s"] for r in rs], scale=1.0, digits=0)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def plasticity(run: dict) -> float | None:
    """The summary's plasticity (diagonal vs zero-shot), computed for runs stored before the
    summary held it."""
    from clbench.metrics import plasticity as from_evaluations

    summary = run["summary"]
    if "plasticity" in summary:
        return summary["plasticity"]
    return from_evaluations(run["evaluations"], summary["target"], len(run["sessions"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["tune", "compare"])
    parser.add_argument("--scenario", default="proxy-20shot")
    parser.add_argument("--strategies", nargs="+", default=COMPARED)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--db", default="comparison.db")
    parser.add_argument("--out", help="tune: also write the report to this file")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    return tune(args) if args.action == "tune" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
