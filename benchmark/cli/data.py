"""`clbench data ...`: prepare the paper's datasets from the user's own copies, check them, show
what a dataset expects. Heavy imports (torch, PyAV) happen inside the commands only. What each
command does for a dataset is decided by the dataset's kind (`clbench.scenarios.loaders`).

  clbench data prepare tsi --videos DIR [--out DIR] [--workers N]
  clbench data prepare dalle --from DIR [--out DIR] [--skip-corrupt]
  clbench data prepare gts [--root DIR] [--download]
  clbench data prepare imagenet [--root DIR]
  clbench data prepare NAME [--root DIR]      (any `folder` dataset: index the files in place)
  clbench data check NAME [--skip-corrupt] [--json]
  clbench data show NAME

`prepare` writes the dataset's file index (`manifest.json`, see `clbench.scenarios.integrity`).
"""

from __future__ import annotations

import argparse
import json

from clbench.errors import UserError


def add_parser(sub) -> None:
    data = sub.add_parser("data", help="prepare, check and describe the paper's datasets",
                          description="Make the paper's datasets from your own copies "
                          "(reproducibly), verify them, and show their expected layout.")
    actions = data.add_subparsers(dest="data_command", metavar="ACTION")

    def root_option(p):
        p.add_argument("--data-root", metavar="DIR", help="root of local datasets (default: "
                       "$CLBENCH_DATA, else ./data; $CLBENCH_DATA_<NAME> points at one "
                       "dataset's own folder)")

    prep = actions.add_parser("prepare", help="build a dataset's files and its file index "
                              "(manifest.json)")
    prep.add_argument("name", metavar="NAME", help="dataset name, e.g. tsi, dalle, gts, "
                      "imagenet (`clbench list datasets`)")
    prep.add_argument("--videos", metavar="DIR", help="tsi: folder of Toyota Smarthome trimmed "
                      "clips (<Action>_<subject>_<recording>_<video>_<camera>.mp4)")
    prep.add_argument("--from", dest="source", metavar="DIR", help="dalle: folder of generated "
                      "images, <caption>/<file>")
    prep.add_argument("--root", metavar="DIR", help="gts: folder holding torchvision's gtsrb/; "
                      "imagenet: folder holding val/<wnid>/; a folder dataset: its folder")
    prep.add_argument("--out", metavar="DIR", help="tsi, dalle: output folder (default: the "
                      "dataset's folder under the data root)")
    prep.add_argument("--download", action="store_true", help="gts: let torchvision download "
                      "GTSRB (needs network)")
    prep.add_argument("--workers", type=int, default=1, help="tsi: parallel decoding processes "
                      "(output is identical for any number)")
    prep.add_argument("--skip-corrupt", action="store_true", help="dalle: leave out images that "
                      "do not decode (listed in the file index) instead of failing")
    root_option(prep)

    check = actions.add_parser("check", help="verify presence, counts and checksums")
    check.add_argument("name", metavar="NAME", help="dataset name (`clbench list datasets`)")
    check.add_argument("--skip-corrupt", action="store_true", help="report missing or corrupt "
                       "files but exit 0 (runs then need --skip-corrupt too, and record them)")
    check.add_argument("--json", action="store_true", help="machine-readable result")
    root_option(check)

    show = actions.add_parser("show", help="a dataset's layout, how to obtain it, classes, "
                              "prompts")
    show.add_argument("name", metavar="NAME")
    root_option(show)


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
    from clbench.scenarios.loaders import PrepareRequest, kind_of
    from clbench.scenarios.manifests import list_datasets

    if args.name not in list_datasets():
        raise UserError(unknown_name_message("dataset", args.name, preparable()))
    manifest = _manifest(args.name)
    kind = kind_of(manifest)
    if not kind.can_prepare:
        raise UserError(f"dataset '{args.name}' (kind {kind.name}) has nothing to prepare",
                        hint=f"preparable: {', '.join(preparable())}")
    request = PrepareRequest(data_root=args.data_root, out=args.out, root=args.root,
                             source=args.source, videos=args.videos, download=args.download,
                             workers=args.workers, skip_corrupt=args.skip_corrupt)
    _print_counts(kind.prepare(manifest, request))
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
