"""`clbench data ...`: prepare the paper's datasets from the user's own copies, check them, show
what a dataset expects. Heavy imports (torch, PyAV) happen inside the commands only. What each
command does for a dataset is decided by the dataset's kind (`clbench.scenarios.loaders`).

  clbench data prepare NAME [FLAGS OF ITS KIND] [--data-root DIR]
  clbench data prepare NAME --help       (the flags NAME's kind takes)
  clbench data check NAME [--skip-corrupt] [--json]
  clbench data show NAME

`prepare` writes the dataset's file index (`manifest.json`, see `clbench.scenarios.integrity`).
Its flags are declared with the kinds (`Preparation` in `loaders.py`); this module only turns
the declarations into the parser's options and a kind's `--help`, so a new kind's flags need no
edit here.
"""

from __future__ import annotations

import argparse
import json

from clbench.errors import UserError

GIVEN = "prepare "  # namespace prefix of the kinds' flags: "prepare --videos"


def _root_option(p) -> None:
    p.add_argument("--data-root", metavar="DIR", help="root of local datasets (default: "
                   "$CLBENCH_DATA, else ./data; $CLBENCH_DATA_<NAME> points at one "
                   "dataset's own folder)")


def _add_flag(parser, flag, help: str, **kwargs) -> None:
    """A kind's declared flag as an argparse option."""
    help = help.replace("%", "%%")
    if flag.switch:
        parser.add_argument(flag.name, action="store_true", help=help, **kwargs)
    else:
        parser.add_argument(flag.name, type=flag.type, metavar=flag.metavar, help=help, **kwargs)


def add_parser(sub) -> None:
    from clbench.scenarios.loaders import prepare_flags

    data = sub.add_parser("data", help="prepare, check and describe the paper's datasets",
                          description="Make the paper's datasets from your own copies "
                          "(reproducibly), verify them, and show their expected layout.")
    actions = data.add_subparsers(dest="data_command", metavar="ACTION")

    prep = actions.add_parser(
        "prepare", add_help=False, help="build a dataset's files and its file index "
        "(manifest.json)", usage="%(prog)s NAME [FLAGS OF ITS KIND] [--data-root DIR]",
        description="Build a dataset's files from your copy and write its file index "
        "(manifest.json). Each dataset kind takes its own flags, listed below with the kinds "
        "that take them; `clbench data prepare NAME --help` shows NAME's alone.")
    prep.add_argument("-h", "--help", action="store_true", dest="want_help",
                      help="show this help (with NAME: the flags NAME takes) and exit")
    prep.add_argument("name", nargs="?", metavar="NAME", help="dataset name, e.g. tsi, dalle, "
                      "gts, imagenet (`clbench list datasets`)")
    flags = prep.add_argument_group("flags of the dataset kinds (KIND: what it reads)")
    for name, declared in prepare_flags().items():
        texts: dict[str, list[str]] = {}
        for kind, flag in declared:
            texts.setdefault(flag.help, []).append(kind)
        _add_flag(flags, declared[0][1], "; ".join(f"{', '.join(k)}: {t}" for t, k in
                                                   texts.items()),
                  dest=GIVEN + name, default=argparse.SUPPRESS)
    _root_option(prep)
    prep.set_defaults(prepare_help=prep.format_help)

    check = actions.add_parser("check", help="verify presence, counts and checksums")
    check.add_argument("name", metavar="NAME", help="dataset name (`clbench list datasets`)")
    check.add_argument("--skip-corrupt", action="store_true", help="report missing or corrupt "
                       "files but exit 0 (runs then need --skip-corrupt too, and record them)")
    check.add_argument("--json", action="store_true", help="machine-readable result")
    _root_option(check)

    show = actions.add_parser("show", help="a dataset's layout, how to obtain it, classes, "
                              "prompts")
    show.add_argument("name", metavar="NAME")
    _root_option(show)


def _kind_help(manifest, kind) -> str:
    """`clbench data prepare NAME --help`: the flags NAME's kind declares, as a parser of their
    own (with the same help texts, defaults and required ones as the kind's declaration)."""
    parser = argparse.ArgumentParser(
        prog=f"clbench data prepare {manifest.name}", add_help=False,
        description=f"{manifest.description.strip()} Its kind, {kind.name}: "
                    f"{kind.summary}.".replace("%", "%%"),
        epilog=f"obtain: {manifest.obtain.strip()}".replace("%", "%%")
        if manifest.obtain.strip() else None)
    for flag in kind.preparation.flags:
        default = "" if flag.switch or flag.default is None else f" (default: {flag.default})"
        _add_flag(parser, flag, flag.help + default,
                  **({} if flag.switch else {"required": flag.required}))
    _root_option(parser)
    return parser.format_help()


def _manifest(name: str):
    from clbench.scenarios.manifests import load_dataset_manifest

    return load_dataset_manifest(name)  # unknown names suggest the closest


def cmd_data(args: argparse.Namespace) -> int:
    if args.data_command == "prepare":
        return _prepare(args)
    if args.data_command == "check":
        return _check(args)
    if args.data_command == "show":
        return _show(args)
    raise UserError("usage: clbench data {prepare,check,show} NAME ...",
                    hint="`clbench data --help`")


def preparable() -> list[str]:
    """Datasets whose kind can prepare them."""
    from clbench.scenarios.loaders import kind_of
    from clbench.scenarios.manifests import list_datasets, load_dataset_manifest

    return [n for n in list_datasets() if kind_of(load_dataset_manifest(n)).can_prepare]


def _prepare(args: argparse.Namespace) -> int:
    from clbench.names import unknown_name_message
    from clbench.scenarios.loaders import kind_of
    from clbench.scenarios.manifests import list_datasets

    if args.name is None:
        if args.want_help:
            print(args.prepare_help(), end="")
            return 0
        raise UserError("`clbench data prepare` needs a dataset NAME",
                        hint=f"preparable: {', '.join(preparable())}; `clbench data prepare "
                             "NAME --help` lists the flags it takes")
    if args.name not in list_datasets():
        raise UserError(unknown_name_message("dataset", args.name, preparable()))
    manifest = _manifest(args.name)
    kind = kind_of(manifest)
    if not kind.can_prepare:
        raise UserError(f"dataset '{args.name}' (kind {kind.name}) has nothing to prepare",
                        hint=f"preparable: {', '.join(preparable())}")
    if args.want_help:
        print(_kind_help(manifest, kind), end="")
        return 0
    given = {key[len(GIVEN):]: value for key, value in vars(args).items()
             if key.startswith(GIVEN)}
    _print_counts(kind.prepare(manifest, given, args.data_root))
    return 0


def _print_counts(report: dict) -> None:
    from clbench.scenarios.integrity import counts

    per_split = counts(report["records"])
    totals = ", ".join(f"{s} {sum(c.values())}" for s, c in per_split.items())
    print(f"wrote {report['index']}: {len(report['records'])} images ({totals})")
    if len(per_split) and sum(len(c) for c in per_split.values()) <= 100:
        labels = sorted({label for c in per_split.values() for label in c})
        print(f"  {'class':<34}" + "".join(f"{s:>8}" for s in per_split))
        for label in labels:
            print(f"  {label:<34}" + "".join(f"{per_split[s].get(label, 0):>8}"
                                            for s in per_split))
    skipped = report["info"].get("skipped", {})
    for kind, items in skipped.items():
        if items:
            print(f"  skipped ({kind.replace('_', ' ')}): {len(items)}, e.g. {items[0]}")
    dropped = report["info"].get("dropped_actions")
    if dropped:
        print("  dropped (ambiguous, table 6): "
              + ", ".join(f"{a} {n}" for a, n in dropped.items()))


def _check(args: argparse.Namespace) -> int:
    from clbench.scenarios.check import check_dataset

    manifest = _manifest(args.name)
    result = check_dataset(manifest, args.data_root)  # as the dataset's kind checks it
    if args.json:
        print(json.dumps({"dataset": result.dataset, "folder": str(result.folder),
                          "ok": result.ok, "counts": result.counts, "classes": result.classes,
                          "prepared_manifest_sha256": result.prepared_sha256,
                          "missing": result.problems.missing,
                          "corrupt": result.problems.corrupt, "notes": result.notes}, indent=2))
    else:
        print("\n".join(result.lines()))
    if result.ok or args.skip_corrupt:
        return 0
    raise UserError(f"dataset '{args.name}': {result.problems.summary()}",
                    hint="re-prepare or replace these files; or run with --skip-corrupt to "
                         "leave them out (the run records which)")


def _show(args: argparse.Namespace) -> int:
    from clbench.scenarios.datasets import dataset_dir, dataset_env_names
    from clbench.scenarios.loaders import kind_of

    m = _manifest(args.name)
    kind = kind_of(m)
    print(f"{m.name} ({m.loader}): {m.description.strip()}")
    if m.origin != "built-in":
        print(f"declared in: {m.path}")
    if kind.has_files:
        print(f"folder: {dataset_dir(m, args.data_root)} "
              f"(override: {' or '.join(dataset_env_names(m))})")
        print(f"layout: {kind.layout_text(m)}")
        print(f"obtain: {m.obtain.strip()}")
        if m.prepare:
            print(f"prepare: {m.prepare.strip()}")
    if m.subset:
        print(f"subset: {m.subset['per_class']} images per class, seed {m.subset['seed']}")
    if m.templates:
        print("templates: " + " | ".join(m.templates))
    for name in m.class_names:
        prompt = m.generation_prompts.get(name)
        print(f"  {name}" + (f"  <- prompt: {prompt}" if prompt else ""))
    return 0
