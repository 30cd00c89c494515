"""`clbench published check|list`: files of published numbers, the leaderboard's reported rows
(`clbench.published`).

  clbench published check FILE [--json]   validate a file of your own and print its rows
  clbench published list [--json]         the built-in published numbers

A bad file is one `error:` line naming the file and the entry, and exit 2; nothing is stored
either way (the leaderboard reads the files when it starts: `clbench app --published FILE`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from clbench.errors import UserError


def add_parser(sub) -> None:
    published = sub.add_parser(
        "published", help="published numbers: check a file, list the built-in ones",
        description="Published numbers are what papers report for a method on a scenario; the "
        "leaderboard shows them as reported rows beside the measured runs of that scenario "
        "(`clbench app --published FILE` adds a file of your own).")
    actions = published.add_subparsers(dest="published_command", metavar="ACTION")
    check = actions.add_parser("check", help="validate a file of published numbers and print "
                               "its rows (exit 2 on a mistake)")
    check.add_argument("file", metavar="FILE", type=Path, help="the YAML file to check")
    check.add_argument("--json", action="store_true", help="the rows as a JSON list")
    listing = actions.add_parser("list", help="the published numbers clbench ships")
    listing.add_argument("--json", action="store_true", help="the rows as a JSON list")


def cmd_published(args: argparse.Namespace) -> int:
    from clbench import published

    if args.published_command == "check":
        entries = published.load_file(args.file)
    elif args.published_command == "list":
        entries = published.load_file(published.built_in_path())
    else:
        raise UserError("no published action given",
                        hint="clbench published check FILE, or clbench published list")
    if args.json:
        print(json.dumps([e.as_dict() for e in entries], indent=2))
    else:
        print(format_entries(entries))
        if args.published_command == "check":
            print(f"\n{args.file}: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} "
                  "valid")
    return 0


def format_entries(entries) -> str:
    """The rows grouped by scenario: method, backbone, each metric in its shown unit (header:
    the metric's short label and unit) and [k], the source it was read from, listed beneath
    with the notes."""
    from clbench.published import metric_of
    from clbench.run.report import table

    blocks = []
    for scenario in dict.fromkeys(e.scenario for e in entries):
        mine = [e for e in entries if e.scenario == scenario]
        names = list(dict.fromkeys(n for e in mine for n in e.metrics))
        sources = list(dict.fromkeys(f"{e.cited}: {e.source}" for e in mine))
        headers = ["method", "backbone", *[_header(n, metric_of(n)) for n in names], "source"]
        rows = [[e.method + (" (reference)" if e.reference else ""), e.backbone,
                 *[f"{e.metrics[n]:.{metric_of(n).digits}f}" if n in e.metrics else "–"
                   for n in names],
                 f"[{sources.index(f'{e.cited}: {e.source}') + 1}]"] for e in mine]
        lines = [scenario, *("  " + line for line in table(headers, rows).splitlines())]
        lines += [f"  [{k}] {text}" for k, text in enumerate(sources, start=1)]
        notes: dict[str, list[str]] = {}  # a note several entries share is printed once
        for e in mine:
            if e.note:
                notes.setdefault(e.note, []).append(e.method)
        lines += [f"  note ({', '.join(methods)}): {note}" for note, methods in notes.items()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _header(name: str, metric) -> str:
    from clbench.metrics import split_control_column

    parsed = split_control_column(name)
    return f"{metric.short_for(parsed[0] if parsed else None)} ({metric.unit})"
