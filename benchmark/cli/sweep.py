"""`clbench sweep FILE` runs a grid of runs from a sweep file; `clbench sweep status FILE` says
where it stands (`clbench.sweep.plan`, `clbench.sweep.executors`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from clbench.errors import UserError

EPILOG = """examples:
  clbench sweep sweeps/proxy-comparison.yaml              # every strategy x seeds 0 1 2
  clbench sweep sweeps/proxy-comparison.yaml --dry-run    # the runs, what is done, nothing run
  clbench sweep status sweeps/proxy-comparison.yaml       # queued/running/completed/failed

A sweep file expands into runs (scenarios x models x strategies x grid points x seeds), each
resolved as `clbench run` would resolve it. Runs the store already holds completed (same config
hash, scenario manifest hash, model and seed; tuning trials do not count) are skipped, and so are
runs in progress elsewhere; failed ones run again. Everything in the file is checked before
anything runs: a mistake prints one `error:` line and exits 2. Exit status: 0 when every run of
the sweep is completed, 1 when some failed (the table lists each error), 130 on Ctrl-C.
The sweep file's format: docs/sweeps.md.
"""


def add_parser(sub, add_db) -> None:
    sweep = sub.add_parser(
        "sweep", help="run a grid of runs from a sweep file (locally or on SLURM); "
        "`sweep status FILE` shows where it stands",
        description="Expand a sweep file into runs, skip those the store holds completed, "
        "execute the rest (local worker processes, or a SLURM job array through submitit).",
        usage="clbench sweep [status] FILE [options]", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("target", nargs="+", metavar="[status] FILE",
                       help="the sweep file (YAML); `status FILE` only reports")
    sweep.add_argument("--data-root", metavar="DIR", help="root of local datasets (default: "
                       "the sweep file's data_root, else $CLBENCH_DATA, else ./data)")
    sweep.add_argument("--dry-run", action="store_true", help="list the runs and which are "
                       "done, and for slurm print the sbatch script; run and create nothing")
    sweep.add_argument("--detach", action="store_true", help="slurm: submit and return "
                       "(follow with `clbench sweep status FILE`)")
    sweep.add_argument("--json", action="store_true", help="status: a JSON object (counts "
                       "and each run with its status, run id and error)")
    add_db(sweep)


def _files(args: argparse.Namespace) -> tuple[bool, str]:
    target = list(args.target)
    if target[0] == "status":
        if len(target) != 2:
            raise UserError("`clbench sweep status` takes one sweep file",
                            hint="clbench sweep status FILE")
        return True, target[1]
    if len(target) != 1:
        raise UserError(f"`clbench sweep` takes one sweep file, got {' '.join(target)}",
                        hint="clbench sweep FILE, or clbench sweep status FILE")
    return False, target[0]


def cmd_sweep(args: argparse.Namespace) -> int:
    is_status, path = _files(args)
    from clbench.store import resolve_db_url
    from clbench.sweep.executors import load

    sweep = load(path)
    url = resolve_db_url(args.db or sweep.db)
    if is_status:
        return _status(sweep, url, args.json)
    if args.json:
        raise UserError("--json is for `clbench sweep status FILE`",
                        hint="clbench sweep status FILE --json")
    if args.detach and sweep.executor.kind != "slurm":
        raise UserError("--detach is for the slurm executor: local workers end with "
                        "`clbench sweep`", hint="leave out --detach")
    return _run(sweep, url, args)


def _status(sweep, url: str, as_json: bool) -> int:
    from clbench.sweep.status import status_json, status_table, sweep_states

    states = sweep_states(sweep, url)
    if as_json:
        print(json.dumps(status_json(sweep, states), indent=2, default=str))
    else:
        print(status_table(sweep, states))
    return 0


def _plan(sweep, states, todo, elsewhere, url: str) -> str:
    from clbench.sweep.executors import local_threads

    spec = sweep.executor
    done = sum(1 for s in states.values() if s.status == "completed")
    if spec.kind == "local":
        how = f"local: {spec.workers} worker(s) x {local_threads(spec)} thread(s)"
    else:
        how = f"slurm: one job array, {spec.options.get('slurm_partition') or 'default'} " \
              "partition"
    parts = [f"{done} completed before (skipped)"]
    if elsewhere:
        parts.append(f"{len(elsewhere)} running elsewhere (left alone)")
    if sweep.duplicates:
        parts.append(f"{sweep.duplicates} duplicate(s) dropped")
    return (f"sweep {sweep.name}: {len(sweep.runs)} run(s); {', '.join(parts)}; "
            f"{len(todo)} to run ({how}); results in {url.removeprefix('sqlite:///')}")


def _run(sweep, url: str, args: argparse.Namespace) -> int:
    from clbench.scenarios.manifests import manifest_dirs
    from clbench.store import Store, check_writable
    from clbench.sweep import executors as ex
    from clbench.sweep.plan import check_data
    from clbench.sweep.status import COMPLETED, FAILED, RUNNING, status_table, sweep_states

    data_root = args.data_root or sweep.data_root
    if data_root:  # workers (and SLURM nodes) get it whole
        from pathlib import Path

        data_root = str(Path(data_root).expanduser().absolute())
    check_data(sweep, data_root)
    check_writable(url)
    states = sweep_states(sweep, url)
    elsewhere = [r for r in sweep.runs if states[r.key].status == RUNNING]
    todo = [r for r in sweep.runs if states[r.key].status not in (COMPLETED, RUNNING)]
    if sweep.executor.kind == "slurm" and todo and not args.dry_run:
        ex.check_slurm_available()
    print(_plan(sweep, states, todo, elsewhere, url), flush=True)
    if args.dry_run:
        _dry_run(sweep, states, todo)
        return 0
    if not todo:  # every run completed, or in progress elsewhere
        print(status_table(sweep, states))
        return 0

    Store(url).close()  # created once, here, rather than by several workers at once
    ctx: dict[str, Any] = {"db": url, "data_root": data_root,
                           "manifests": [str(p) for p in manifest_dirs()]}
    done_before = sum(1 for r in sweep.runs if states[r.key].status in (COMPLETED, RUNNING))
    live = ex.LiveTable(todo, done_before)
    try:
        if sweep.executor.kind == "local":
            ex.run_local(sweep.executor, todo, ctx, live)
        else:
            ex.run_submitit(sweep.executor, todo, ctx, None if args.detach else live,
                            wait=not args.detach)
            if args.detach:
                print(f"follow it with: clbench sweep status {sweep.path}")
                return 0
    except KeyboardInterrupt:
        live.close()
        print("interrupted: `clbench sweep status FILE` shows what is done; running "
              "`clbench sweep FILE` again resumes", file=sys.stderr)
        return 130
    live.close()
    print()
    final = sweep_states(sweep, url)
    print(status_table(sweep, final))
    return 1 if any(s.status == FAILED for s in final.values()) else 0


def _dry_run(sweep, states, todo) -> None:
    from clbench.run.report import table
    from clbench.sweep.executors import sbatch_script

    will = {r.key for r in todo}
    rows = [[r.index + 1, r.label(), r.scenario, r.model,
             "run" if r.key in will else f"skip ({states[r.key].status})"] for r in sweep.runs]
    print(table(["#", "run", "scenario", "model", "action"], rows))
    if sweep.executor.kind == "slurm" and todo:
        print(f"\nsbatch script for the {len(todo)} run(s) (not submitted):\n")
        print(sbatch_script(sweep.executor, len(todo)))
