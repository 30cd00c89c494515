"""`clbench export`, `clbench import`, `clbench reproduce`: handing results to someone else
and checking them (see `clbench.run.bundles` and `clbench.run.reproduce`).

  clbench export RUN [RUN ...] -o results.json [--name NAME] [--paper URL] [--code URL]
  clbench import results.json
  clbench reproduce RUN_OR_BUNDLE [--tolerance PTS] [--verifier NAME]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from clbench.errors import UserError

DEFAULT_TOLERANCE = 0.5  # accuracy points; on the same machine the proxy reproduces exactly


def add_parsers(sub, add_db) -> None:
    export = sub.add_parser(
        "export", help="write completed runs as a self-contained results bundle (JSON)",
        description="Write completed runs (config, provenance, sessions, every evaluation and "
        "the per-sample predictions behind them) to one JSON file with a content digest, for "
        "`clbench import` elsewhere.")
    export.add_argument("run_ids", nargs="+", metavar="RUN", help="run ids or unique prefixes")
    export.add_argument("-o", "--out", required=True, type=Path, metavar="FILE",
                        help="the bundle file to write")
    export.add_argument("--name", help="submitter: who ran these (shown on the leaderboard)")
    export.add_argument("--paper", metavar="URL", help="submitter: the method's paper")
    export.add_argument("--code", metavar="URL", help="submitter: the method's code")
    add_db(export)
    imp = sub.add_parser(
        "import", help="check a results bundle and add its runs to the store",
        description="Check everything first (format, digest, fields, accuracies, the "
        "scenario's declaration, accuracies against the stored predictions, duplicates); a "
        "bad bundle changes nothing.")
    imp.add_argument("bundle", type=Path, metavar="FILE", help="a bundle from `clbench export`")
    add_db(imp)
    rep = sub.add_parser(
        "reproduce", help="run a stored run (or a bundle's) again and compare every accuracy",
        description="Re-run from the stored config, seed and drawn samples and print the "
        "per-session differences. Recorded with who, where and when; within the tolerance on "
        "another host (or for an imported run) the run counts as verified.")
    rep.add_argument("source", metavar="RUN_OR_BUNDLE", help="a run id (prefix) or a bundle "
                     "file (imported first)")
    rep.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, metavar="PTS",
                     help=f"largest accepted difference of any accuracy, in points (default "
                     f"{DEFAULT_TOLERANCE})")
    rep.add_argument("--verifier", metavar="NAME", help="who reproduces (default: the user "
                     "name)")
    rep.add_argument("--data-root", metavar="DIR", help="root of local datasets")
    rep.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_db(rep)


def _store(db: str | None, create: bool):
    from clbench.store import Store, resolve_db_url

    return Store(resolve_db_url(db), create=create)


def _declared(scenario: str):
    from clbench.scenarios.manifests import load_scenario_manifest

    try:
        return load_scenario_manifest(scenario)
    except UserError as err:
        raise UserError(f"the bundle's scenario {scenario!r} is not known here: {err}",
                        hint="give its manifest folder with --manifests DIR") from None


def cmd_export(args: argparse.Namespace) -> int:
    from clbench.run import bundles

    store = _store(args.db, create=False)
    bundle = bundles.export(store, args.run_ids, {"name": args.name, "paper": args.paper,
                                                  "code": args.code})
    bundles.write(bundle, args.out)
    print(f"wrote {len(bundle['runs'])} run(s) to {args.out} (digest {bundle['digest'][:16]})")
    return 0


def import_bundle(path: Path, db: str | None) -> tuple[list[str], list[tuple[str, str]]]:
    from clbench.run import bundles

    bundle = bundles.read(path)
    return bundles.import_into(_store(db, create=True), bundle, _declared, str(path))


def cmd_import(args: argparse.Namespace) -> int:
    imported, skipped = import_bundle(args.bundle, args.db)
    for run_id, existing in skipped:
        print(f"skipped {run_id[:12]}: the store holds the same run already ({existing[:12]}: "
              "same config, scenario manifest, model and seed)")
    print(f"imported {len(imported)} run(s)" + (f": {', '.join(i[:12] for i in imported)}"
                                                if imported else ""))
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from clbench.run.reproduce import reproduce

    if args.tolerance < 0:
        raise UserError(f"--tolerance {args.tolerance}: expected a number of points >= 0")
    run_id = args.source
    if args.source.endswith(".json") or Path(args.source).is_file():
        imported, skipped = import_bundle(Path(args.source), args.db)
        ids = imported + [existing for _, existing in skipped]
        if len(ids) != 1:
            raise UserError(f"{args.source} holds {len(ids)} runs; reproduce one at a time",
                            hint="import it, then `clbench reproduce RUN` for each")
        run_id = ids[0]
    store = _store(args.db, create=False)
    original, comparison, independent = reproduce(
        store, run_id, tolerance=args.tolerance, verifier=args.verifier,
        data_root=args.data_root, progress=not args.no_progress)
    print(f"reproduced run {original['id'][:12]} ({original['strategy']} on "
          f"{original['scenario']}, seed {original['seed']})")
    for session, diff in sorted(comparison.per_session.items()):
        label = "zero-shot" if session == 0 else f"after session {session}"
        print(f"  {label:<16} largest accuracy difference {diff:.4f} pts")
    if comparison.missing:
        print(f"  {len(comparison.missing)} stored accuracies were not produced again, e.g. "
              f"{comparison.missing[0]}")
    for line in comparison.code_changes:  # what may explain a difference
        print(f"  note: {line}")
    within = comparison.max_difference <= args.tolerance and not comparison.missing
    verdict = ("within" if within else "OUTSIDE") + f" the tolerance of {args.tolerance} pts"
    status = ("verified (another host or an imported run)" if within and independent else
              "reproduced on the host that ran it: recorded, not a verification"
              if within else "not reproduced")
    print(f"largest difference {comparison.max_difference:.4f} pts: {verdict}; {status}")
    return 0 if within else 1
