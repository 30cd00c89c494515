"""Run every strategy on one scenario with several seeds (and learning rates) and tabulate.

    python scripts/compare_strategies.py --scenario proxy-20shot --seeds 0 1 2 \
        --db comparison.db --out docs/proxy-20shot-comparison.md
    python scripts/compare_strategies.py --seeds 0 --lrs 1e-5 1e-4 1e-3 --db sweep.db

Runs happen in one process (the training stack is imported once) and are stored like any
`clbench run`; the table is computed from the stored evaluations: mean ± std over seeds of the
final target accuracy, each control's accuracy and its change against zero-shot, trainable %
of the vision encoder and train time per session. With `--lrs` every strategy runs at each
learning rate (one row per strategy and lr), which is how methods are compared at matched
target gain rather than at one shared lr. The script resumes: a (strategy, lr, seed) already
completed in `--db` is not run again.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from clbench.config import assemble, resolve
from clbench.runner import run
from clbench.scenarios.manifests import load_scenario_manifest, training_for
from clbench.store import Store, resolve_db_url
from clbench.strategies import registry
from clbench.strategies.registry import strategy_and_base


def mean_std(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    values = [v * scale for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(store: Store, run_ids: dict[tuple[str, float | None], list[str]]) -> str:
    """Markdown table, one row per (strategy, lr); lr None = the scenario's default."""
    runs = {key: [store.get_run(i) for i in ids] for key, ids in run_ids.items()}
    controls = list(next(iter(runs.values()))[0]["summary"]["controls"])
    head = ["strategy", "lr", "seeds", "target final %", "target Δ"]
    for c in controls:
        head += [f"{c} %", f"{c} Δ"]
    head += ["trainable %", "s / session"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (name, _), rs in runs.items():
        s = [r["summary"] for r in rs]
        row = [name, f"{rs[0]['training_config']['lr']:g}", str(len(rs)),
               mean_std([x["final_accuracy"] for x in s]), mean_std([x["target_gain"] for x in s])]
        for c in controls:
            row += [mean_std([x["controls"][c]["final"] for x in s]),
                    mean_std([x["controls"][c]["change"] for x in s])]
        row.append(mean_std([x["trainable_percent"] for x in s], scale=1.0, digits=2))
        row.append(mean_std([statistics.fmean(se["train_time_s"] for se in r["sessions"])
                             for r in rs], scale=1.0))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def stored_runs(store: Store, scenario: str) -> dict[tuple[str, float, int], str]:
    """The newest completed run per (strategy, lr, seed) already in the store."""
    found: dict[tuple[str, float, int], str] = {}
    for r in store.list_runs():  # newest first
        if r["status"] == "completed" and r["scenario"] == scenario:
            lr = store.get_run(r["id"])["training_config"]["lr"]
            found.setdefault((r["strategy"], lr, r["seed"]), r["id"])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", default="proxy-20shot")
    parser.add_argument("--strategies", nargs="*", help="default: every registered strategy")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--lrs", nargs="*", type=float,
                        help="learning rates to sweep (default: the scenario's own)")
    parser.add_argument("--db", default="comparison.db")
    parser.add_argument("--out", help="also write the table (markdown) here")
    parser.add_argument("--table-only", action="store_true",
                        help="run nothing; tabulate the completed runs already in --db")
    args = parser.parse_args()

    store = Store(resolve_db_url(args.db))
    manifest = load_scenario_manifest(args.scenario)
    names = args.strategies or sorted(registry.available())
    done = stored_runs(store, args.scenario)
    rows: dict[tuple[str, float], list[str]] = {}
    for name in names:
        for lr in args.lrs or [None]:  # None: the scenario's learning rate for this strategy
            for seed in args.seeds:
                layer = {"strategy": name, "scenario": args.scenario, "seed": seed}
                if lr is not None:
                    layer["training"] = {"lr": lr}
                config = resolve(assemble([layer]),
                                 training_for(manifest, *strategy_and_base(name)))
                key = (name, config.training.lr, seed)
                if key not in done and not args.table_only:
                    try:
                        result = run(config, store, progress=False, quiet=True)
                    except Exception as err:  # stored as failed; the comparison goes on
                        print(f"{name} lr {config.training.lr:g} seed {seed}: FAILED "
                              f"{type(err).__name__}: {err}", flush=True)
                        continue
                    done[key] = result.run_id
                    print(f"{name} lr {config.training.lr:g} seed {seed}: final "
                          f"{100 * result.summary['final_accuracy']:.1f}% in "
                          f"{result.total_time_s:.0f}s", flush=True)
                if key in done:
                    rows.setdefault(key[:2], []).append(done[key])
    text = table(store, rows)
    print(text)
    if args.out:
        Path(args.out).write_text(f"# {args.scenario}: every strategy, seeds "
                                  f"{', '.join(map(str, args.seeds))}\n\n{text}\n")


if __name__ == "__main__":
    main()
