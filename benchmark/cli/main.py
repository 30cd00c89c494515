"""The `clbench` command line.

Quick commands (`--help`, `list`, `runs`, `show`) import neither torch nor Avalanche, so they
answer at once; `run` imports the training stack only when it starts. User errors print one
line (`error: ...`, maybe `hint: ...`) and exit non-zero without a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from clbench import __version__
from clbench.cli import app as cli_app
from clbench.cli import bench as cli_bench
from clbench.cli import data as cli_data
from clbench.cli import db as cli_db
from clbench.cli import published as cli_published
from clbench.cli import results as cli_results
from clbench.cli import sweep as cli_sweep
from clbench.errors import UserError, report

EPILOG_RUN = """examples:
  clbench run --strategy fft --scenario proxy-20shot
  clbench run --strategy ln --scenario proxy-20shot --seed 1 --set training.lr=1e-4
  clbench run --strategy fft --scenario tsi-20shot --model ViT-L-14 --pretrained openai
  clbench run --config my_run.yaml --set training.epochs=5
  clbench run --resume 3f2a9c  # continue a failed or killed run from its last session

After every session the run's state is checkpointed (beside an SQLite store: results.db ->
results.checkpoints/RUN_ID/; else $CLBENCH_CHECKPOINT_DIR or ~/.cache/clbench/checkpoints), and
deleted when the run completes. `--resume RUN_ID` continues from the last checkpoint: the
stored rows end as an uninterrupted run's. It refuses a run whose code, config or data changed
since it started unless --force (recorded with the run).

config keys (YAML file or --set): strategy (name, or a mapping with name and its parameters),
scenario, seed, device, controls (list of control eval sets), model.{arch,pretrained,checkpoint},
training.{epochs,batch_size,lr,optimizer,weight_decay,scheduler,warmup,loss,eval_batch_size,
precision,grad_clip}, the speed switches training.{grad_checkpointing,channels_last,compile,
workers,sdpa} (docs/performance.md, "Speed switches"); strategy parameters as strategy.<param> (see `clbench
list strategies -v`).
Precedence: defaults < scenario's training block (then its strategy_training entry
for this strategy, whose strategy: mapping gives strategy parameters) < --config < flags < --set.
"""


EPILOG_TUNE = """examples:
  clbench tune --strategy lorsu --scenario proxy-20shot --grid training.lr=1e-5,3e-5,1e-4
  clbench tune --strategy lora --scenario proxy-20shot --grid training.lr=1e-4,3e-4 \
      --grid strategy.rank=8,32 --seeds 0 1

Every grid point runs as `clbench run` would, once per seed, but is evaluated on validation data
only: the target's validation split (drawn from its training images, disjoint from the shots;
the scenario's `validation:` key) and each control's `val` split. No test split is loaded. The
point with the highest mean balanced score (target change + mean control change) wins; a tie
goes to the earlier grid point. With --max-control-drop PTS the highest target change wins among
the points whose worst control lost at most PTS points (none such: exit 2). Every trial is
stored as a run marked `tuning`, which the leaderboard never ranks. The chosen setting is
printed as a `strategy_training` entry to paste into the scenario YAML (the grid's values and
every training key and strategy parameter fixed with --set), with this command as a comment
and the `clbench run` command that runs it (with --plugin and the settings a scenario cannot
hold: model, controls, device).
"""


# the keys of each object `clbench runs --json` prints, in order; `runs --help` lists them
RUNS_JSON_KEYS = ("id", "status", "strategy", "scenario", "model", "seed", "created_at",
                  "purpose", "source")


class Parser(argparse.ArgumentParser):
    """argparse's parser, with its usage errors in clbench's form: one `error:` line, a hint."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message}\nhint: `{self.prog} --help` explains "
                     "every option\n")


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="URL", help="results database: an SQLAlchemy URL or a "
                        "file path (default: $CLBENCH_DB, else ./clbench.db)")


def _add_manifests(parser: argparse.ArgumentParser, top: bool = False) -> None:
    parser.add_argument("--manifests", metavar="DIR", action="append",
                        default=None if top else argparse.SUPPRESS,
                        help="also read dataset and scenario YAML from DIR (its datasets/ and "
                        "scenarios/ folders; repeatable; default: $CLBENCH_MANIFESTS)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="clbench", description="Continual few-shot benchmark for CLIP vision encoders: "
        "fine-tune over sessions of new classes, measure the target and what was forgotten.")
    parser.add_argument("--version", action="version", version=f"clbench {__version__}")
    _add_manifests(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    run = sub.add_parser("run", help="run one strategy on one scenario and store the results",
                         description="Fine-tune a CLIP model session by session, evaluate after "
                         "every session, store every number with its provenance.",
                         epilog=EPILOG_RUN, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--strategy", help="strategy name (`clbench list strategies`)")
    run.add_argument("--scenario", help="scenario name or a scenario YAML file "
                     "(`clbench list scenarios`)")
    run.add_argument("--model", metavar="ARCH", help="open_clip architecture, or proxy-vit-tiny "
                     "(default: the embedded proxy)")
    run.add_argument("--pretrained", metavar="TAG", help="open_clip pretrained tag, e.g. openai")
    run.add_argument("--checkpoint", metavar="PATH", help="local model checkpoint file instead "
                     "of a tag")
    run.add_argument("--seed", type=int, help="seed for shots, class order and training "
                     "(default 0)")
    run.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    run.add_argument("--config", metavar="FILE", help="YAML file with run configuration keys")
    run.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                     help="override one config key, e.g. training.lr=1e-4 (repeatable)")
    from clbench.cli.plugin_option import PluginOption

    run.add_argument("--plugin", metavar="SPEC", action=PluginOption, dest="plugins",
                     help="add an Avalanche plugin to the strategy (repeatable): "
                     "avalanche:ClassName (e.g. avalanche:EWCPlugin) or package.module:ClassName; "
                     "its arguments with --set plugin.KEY=VALUE (several plugins: "
                     "plugin.CLASS.KEY=VALUE); stored in the run's config and preset")
    run.add_argument("--data-root", metavar="DIR", help="root of local datasets "
                     "(default: $CLBENCH_DATA, else ./data)")
    run.add_argument("--controls", metavar="SET[,SET...]", help="control eval sets instead of "
                     "the scenario's, e.g. dalle,imagenet-10pc for the fast ImageNet subset")
    _add_manifests(run)
    run.add_argument("--skip-corrupt", action="store_true", help="leave out missing or corrupt "
                     "data files instead of failing (the run records which)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--quiet", action="store_true", help="print only the final line")
    run.add_argument("--json", action="store_true", help="print the stored run as JSON at the end")
    resume = run.add_argument_group("checkpoints and resuming")
    resume.add_argument("--resume", metavar="RUN", help="continue the failed or killed run RUN "
                        "(id or unique prefix) from its last session checkpoint, with its "
                        "stored config (no other config flags)")
    resume.add_argument("--force", action="store_true", help="with --resume: resume although "
                        "the code, config or data changed since the run started (recorded)")
    resume.add_argument("--checkpoint-dir", metavar="DIR", help="base folder of session "
                        "checkpoints (default: beside an SQLite store, else "
                        "$CLBENCH_CHECKPOINT_DIR or ~/.cache/clbench/checkpoints)")
    resume.add_argument("--no-checkpoints", action="store_true", help="do not checkpoint "
                        "sessions (a crash then loses the whole run)")
    resume.add_argument("--keep-checkpoints", action="store_true", help="keep the last session "
                        "checkpoint when the run completes (deleted by default)")
    _add_db(run)

    tune = sub.add_parser("tune", help="choose a strategy's settings on validation data",
                          description="Run a grid of settings, score each on validation data "
                          "only, print the table and the chosen setting as scenario YAML.",
                          epilog=EPILOG_TUNE,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    tune.add_argument("--strategy", help="strategy name (`clbench list strategies`)")
    tune.add_argument("--scenario", help="scenario name or a scenario YAML file")
    tune.add_argument("--grid", metavar="KEY=V1,V2,...", action="append", default=[],
                      help="values to try for one training.* or strategy.* key (repeatable; "
                      "the grid is their cartesian product)")
    tune.add_argument("--seeds", type=int, nargs="+", metavar="N", help="tuning seeds; a "
                      "point's score is its mean over them (default: 0)")
    tune.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                      dest="overrides", help="fixed config key for every point (repeatable)")
    tune.add_argument("--plugin", metavar="SPEC", action=PluginOption, dest="plugins",
                      help="add an Avalanche plugin to the strategy at every point (repeatable; "
                      "as in `clbench run`; its arguments with --set plugin.KEY=VALUE)")
    tune.add_argument("--max-control-drop", type=float, metavar="PTS", help="instead of the "
                      "balanced score: the highest target change among the points whose worst "
                      "control loses at most PTS points (for a bound such as joint-replay's)")
    tune.add_argument("--controls", metavar="SET[,SET...]", help="control eval sets instead "
                      "of the scenario's (each needs a 'val' split)")
    tune.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    tune.add_argument("--data-root", metavar="DIR", help="root of local datasets "
                      "(default: $CLBENCH_DATA, else ./data)")
    _add_manifests(tune)
    tune.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_db(tune)

    runs = sub.add_parser("runs", help="table of stored runs, newest first")
    runs.add_argument("--json", action="store_true", help="a JSON list, one object per run "
                      f"with the keys {', '.join(RUNS_JSON_KEYS)}")
    runs.add_argument("--limit", type=int, metavar="N", help="show at most N runs (N >= 1)")
    _add_db(runs)

    show = sub.add_parser("show", help="one run: per-session accuracies, config, provenance")
    show.add_argument("run_id", metavar="RUN", help="run id or a unique prefix of it")
    show.add_argument("--json", action="store_true", help="the run with config, provenance, "
                      "sessions and every evaluation {after_session, eval_set, subset, accuracy, "
                      "n}")
    _add_db(show)

    lst = sub.add_parser("list", help="known strategies, scenarios, models or datasets")
    lst.add_argument("what", choices=["strategies", "scenarios", "models", "datasets"])
    lst.add_argument("-v", "--verbose", action="store_true", help="strategies: with parameters")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    _add_manifests(lst)

    params = sub.add_parser(
        "params", help="trainable parameters of every strategy on an architecture (table 9)",
        description="Counts, from the architecture alone (meta device: no weights, no memory), "
        "how many parameters each strategy trains at its default settings.")
    params.add_argument("--model", default="ViT-L-14", metavar="ARCH",
                        help="open_clip architecture or proxy-vit-tiny (default ViT-L-14)")
    params.add_argument("--strategy", action="append", metavar="NAME",
                        help="only these strategies (repeatable; default: all)")
    params.add_argument("--json", action="store_true",
                        help="{strategy: {trainable, total, percent}}")

    proxy = sub.add_parser("proxy", help="the embedded proxy world and model")
    proxy_sub = proxy.add_subparsers(dest="proxy_command", metavar="ACTION")
    pretrain = proxy_sub.add_parser(
        "pretrain", help="pretrain the proxy CLIP (reproducible; writes the checkpoint)",
        description="Pretrain the embedded proxy CLIP on its procedural world and write the "
        "checkpoint with its provenance JSON beside it (seeded; bit-identical with the same "
        "torch build and thread count).")
    pretrain.add_argument("--out", type=Path, metavar="PATH",
                          help="checkpoint file to write (.pt; provenance beside it as .json; "
                          "default: the committed checkpoint of proxy-vit-tiny)")
    pretrain.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    pretrain.add_argument("--steps", type=int, default=2400, metavar="N",
                          help="training steps, fixed for reproducibility (default 2400, as "
                          "the committed checkpoint)")
    pretrain.add_argument("--batch-size", type=int, default=128, metavar="N",
                          help="images per step (default 128)")
    pretrain.add_argument("--lr", type=float, default=2e-3, help="peak AdamW rate "
                          "(default 2e-3; warm-up then cosine)")
    pretrain.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    pretrain.add_argument("--no-progress", action="store_true", help="no progress bar")
    cli_app.add_parser(sub)
    cli_data.add_parser(sub)
    cli_results.add_parsers(sub, _add_db)
    cli_db.add_parser(sub, _add_db)
    cli_sweep.add_parser(sub, _add_db)
    cli_bench.add_parser(sub)
    cli_published.add_parser(sub)
    return parser


# --------------------------------------------------------------------------- commands


# `clbench run` flags that set the config (dest -> flag): a resumed run keeps its stored one
_CONFIG_FLAGS = {"strategy": "--strategy", "scenario": "--scenario", "model": "--model",
                 "pretrained": "--pretrained", "checkpoint": "--checkpoint", "seed": "--seed",
                 "device": "--device", "config": "--config", "overrides": "--set",
                 "plugins": "--plugin", "controls": "--controls", "skip_corrupt": "--skip-corrupt"}


def cmd_run(args: argparse.Namespace) -> int:
    from clbench.run import checkpoints
    from clbench.store import LazyStore, resolve_db_url

    if args.resume:
        return _resume(args)
    if args.force:
        raise UserError("--force only applies to --resume",
                        hint="leave it out, or resume a run with --resume RUN --force")
    config = _config_from_flags(args)
    url = resolve_db_url(args.db)
    open_store = LazyStore(url)  # checked now; created once the run passes every check
    policy = checkpoints.policy(url, directory=args.checkpoint_dir,
                                enabled=not args.no_checkpoints, keep=args.keep_checkpoints)

    from clbench.run.runner import run

    result = run(config, open_store, data_root=args.data_root, skip_corrupt=args.skip_corrupt,
                 progress=not args.no_progress, quiet=args.quiet, checkpoints=policy)
    _print_result(args, open_store(), result)
    return 0


def _resume(args: argparse.Namespace) -> int:
    from clbench.store import Store, resolve_db_url

    given = [flag for dest, flag in _CONFIG_FLAGS.items() if getattr(args, dest, None)]
    if given:
        raise UserError(f"--resume continues a run with its stored config; {', '.join(given)} "
                        "cannot change it", hint="leave them out (or start a new run without "
                        "--resume)")
    if args.no_checkpoints:
        raise UserError("--resume needs the run's checkpoints; --no-checkpoints contradicts it",
                        hint="leave out --no-checkpoints")
    from clbench.run.resume import resume

    store = Store(resolve_db_url(args.db), create=False)
    store.require_writable(f"resume run {args.resume}")  # now, not after loading the model
    result = resume(args.resume, store, force=args.force, checkpoint_dir=args.checkpoint_dir,
                    data_root=args.data_root, progress=not args.no_progress, quiet=args.quiet,
                    keep_checkpoint=args.keep_checkpoints)
    _print_result(args, store, result)
    return 0


def _print_result(args: argparse.Namespace, store, result) -> None:
    if args.json:
        from clbench.run.report import run_json

        print(json.dumps(run_json(store.get_run(result.run_id)), indent=2, default=str))
    else:
        from clbench.run.report import format_summary

        print(format_summary(result.run_id, result.summary, result.total_time_s))


def _config_from_flags(args: argparse.Namespace):
    """The run's config from --config, the flags and --set, resolved against its scenario."""
    from clbench.config import run_config as cfg
    from clbench.run.settings import resolve_for_scenario
    from clbench.scenarios.manifests import load_scenario_manifest

    layers: list[dict[str, Any]] = []
    if args.config:
        layers.append(cfg.load_yaml_config(args.config))
    flags: dict[str, Any] = {}
    if args.strategy:
        flags["strategy"] = {"name": args.strategy}
    if args.scenario:
        flags["scenario"] = args.scenario
    if args.seed is not None:
        flags["seed"] = args.seed
    if args.device:
        flags["device"] = args.device
    if args.controls:
        flags["controls"] = args.controls
    model = {k: v for k, v in (("arch", args.model), ("pretrained", args.pretrained),
                               ("checkpoint", args.checkpoint)) if v}
    if model:
        flags["model"] = model
    layers += [flags, cfg.parse_set_options(args.overrides)]
    raw = cfg.assemble(layers)
    if not raw.get("scenario"):
        raise UserError("no scenario given", hint="pass --scenario NAME "
                        "(`clbench list scenarios`)")
    manifest = load_scenario_manifest(str(raw["scenario"]))
    config = resolve_for_scenario(raw, manifest)
    _note_claimants(config.strategy)
    from clbench.strategies import registry

    # a wrong name or value is reported now, before the training stack (torch, Avalanche:
    # seconds of imports) is loaded
    registry.check_params(config.strategy, config.strategy_params)
    return config


def _note_claimants(strategy: str) -> None:
    """Say so when an installed plugin claims the name of the built-in about to run: the
    built-in runs, never silently in the plugin's place (or the other way round)."""
    from clbench.strategies import registry

    for other in registry.claimants(strategy):
        print(f"note: the installed package {other.distribution} also registers a strategy "
              f"'{strategy}'; this run uses the built-in one. Run the plugin as "
              f"'{other.name}'.", file=sys.stderr)


def cmd_tune(args: argparse.Namespace) -> int:
    from clbench.run.tune import run_tune

    return run_tune(args, getattr(args, "argv", None) or sys.argv[1:])


def runs_json_row(run: dict) -> dict[str, Any]:
    """One run as `clbench runs --json` prints it: the keys of RUNS_JSON_KEYS; `source` is
    built-in or third-party (the strategy's)."""
    row = {k: run.get(k) for k in RUNS_JSON_KEYS}
    row["source"] = (run.get("strategy_source") or {}).get("source", "built-in")
    return row


def cmd_runs(args: argparse.Namespace) -> int:
    from clbench.run.report import format_runs, purpose
    from clbench.store import DEFAULT_DB, Store, resolve_db_url

    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit {args.limit}: expected at least 1",
                        hint="leave --limit out to list every run")
    url = resolve_db_url(args.db)
    if not args.db and not os.environ.get("CLBENCH_DB") and not os.path.exists(DEFAULT_DB):
        runs = []  # nothing run here yet: an empty table, not an error
    else:
        store = Store(url, create=False)
        runs = store.list_runs(limit=args.limit)
        for r in runs:  # a tuning run's summary says so; one without a summary, its config
            r["purpose"] = purpose(r) if r.get("summary") else purpose(store.get_run(r["id"]))
    if args.json:
        print(json.dumps([runs_json_row(r) for r in runs], indent=2))
    else:
        print(format_runs(runs))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from clbench.run.report import format_run, run_json
    from clbench.store import Store, resolve_db_url

    store = Store(resolve_db_url(args.db), create=False)
    run = store.get_run(args.run_id)
    run["verifications"] = store.verifications_of(run["id"])  # `clbench reproduce` records
    print(json.dumps(run_json(run), indent=2, default=str) if args.json else format_run(run))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from clbench.cli import catalog

    print(catalog.render(args.what, verbose=args.verbose, as_json=args.json))
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    from clbench.cli.params import format_table, trainable_table

    table = trainable_table(args.model, args.strategy)
    print(json.dumps(table, indent=2) if args.json else format_table(args.model, table))
    return 0


def cmd_proxy(args: argparse.Namespace) -> int:
    if args.proxy_command != "pretrain":
        raise UserError("no proxy action given", hint="clbench proxy pretrain [--out PATH] "
                        "[--seed N] (see `clbench proxy pretrain --help`)")
    from clbench.run.proxy_pretrain import run as pretrain

    return pretrain(args)


COMMANDS = {"run": cmd_run, "tune": cmd_tune, "runs": cmd_runs, "show": cmd_show, "list": cmd_list,
            "params": cmd_params, "proxy": cmd_proxy, "app": cli_app.cmd_app,
            "data": cli_data.cmd_data, "export": cli_results.cmd_export,
            "import": cli_results.cmd_import, "reproduce": cli_results.cmd_reproduce,
            "db": cli_db.cmd_db, "sweep": cli_sweep.cmd_sweep, "bench": cli_bench.cmd_bench,
            "published": cli_published.cmd_published}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        if getattr(args, "manifests", None):
            from clbench.scenarios.manifests import use_manifest_dirs

            use_manifest_dirs(args.manifests)
        return COMMANDS[args.command](args)
    except BrokenPipeError:
        # the reader went away (`clbench list strategies -v | head`): stop quietly, and keep
        # Python from reporting the same broken pipe again when it flushes stdout at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # what a shell reports for a process ended by SIGPIPE
    except UserError as err:
        return report(err)
    except KeyboardInterrupt:
        print("\ninterrupted (a run in progress is marked failed)", file=sys.stderr)
        return 130
    finally:
        _close_stores()


def _close_stores() -> None:
    """Close every results database the command opened: SQLite then folds its write-ahead log
    back into the file and removes the -wal and -shm files beside it."""
    store = sys.modules.get("clbench.store")
    if store is not None:
        store.close_all()


def console() -> None:
    """The `clbench` command (and `python -m clbench`): `main`, then the process ends.

    Python's teardown of the modules a run imports (torch, torchvision, Avalanche) takes about
    2 s on a 2-core machine after the command's work is done. When nothing is left to do at
    exit (the stores are closed by `main`; no other Python thread runs), the exit handlers run
    and the process ends without that teardown."""
    code = main()
    if "torch" not in sys.modules or threading.active_count() > 1:
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()  # what registered to run at exit (logging, temporary folders)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader gone away, a closed stream: nothing to keep
            pass
    os._exit(code)


if __name__ == "__main__":
    console()
