"""`clbench list ...`: what strategies, scenarios, models and datasets are known (no torch).

Scenarios and datasets come from the built-in declarations and the user manifest folders
(`$CLBENCH_MANIFESTS`, `--manifests`); each row says its origin, and every declaration listed is
loaded, so a user file with an error fails the listing with that error.
"""

from __future__ import annotations

import json

from clbench.backbones import PAPER_BACKBONES, PROXY_ARCH
from clbench.scenarios import manifests

PROXY_MODEL = (PROXY_ARCH, "(embedded)", "tiny CLIP pretrained by `clbench proxy "
               "pretrain` on the procedural proxy world; the default, runs offline")


def _strategies(verbose: bool) -> list[dict]:
    from clbench.strategies import registry

    rows = []
    infos = registry.available()
    for name in registry.listed_names(infos):
        info = infos[name]
        row = {"name": name, "summary": info.summary, "source": info.origin}
        if info.preset:
            row["preset"] = info.preset
        if info.claims:
            row["claims"] = info.claims
        if verbose:
            from clbench.errors import UserError
            from clbench.options import describe_options

            try:  # a plugin that does not import is listed as broken; the others still are
                # a built-in's from its declaration (torch-free, and without finding every
                # strategy again per name); a plugin's from its imported class
                config_class = info.config or registry.config_class(name)
            except UserError as err:
                row["broken"] = str(err)
                row["params"] = []
            else:
                row["params"] = describe_options(config_class)
        rows.append(row)
    return rows


def _scenarios(verbose: bool) -> list[dict]:
    rows = []
    for name in manifests.list_scenarios():
        m = manifests.load_scenario_manifest(name)
        row = {"name": name, "target": m.target, "protocol": m.protocol, "shots": m.shots,
               "sessions": m.session_count, "eval_sets": [*m.stream_eval_sets, *m.eval_sets],
               "description": m.description, "origin": m.origin, "hash": m.hash,
               "includes": [_short(p) for p in m.includes]}
        if verbose:
            row.update(path=m.path, session_sizes=list(m.session_sizes),
                       training=m.training, strategy_training=m.strategy_training,
                       sessions_described=_sessions_described(m))
        rows.append(row)
    return rows


def _sessions_described(m) -> str:
    """What a scenario's sessions are, in words for `list scenarios --verbose`."""
    if m.is_multi_dataset:
        head = ("one head over every dataset's classes" if m.head == manifests.TASK_AGNOSTIC_HEAD
                else "each dataset classified among its own classes")
        return f"one per dataset, {' -> '.join(m.datasets)} ({head})"
    if m.protocol == manifests.BASE_TO_NEW:
        return f"one, on the base half of {m.target}'s classes"
    return str(list(m.session_sizes)) + " classes each" if m.session_sizes else "one (offline)"


def _short(path: str) -> str:
    """A declaration file as its name when it is a built-in one, else its path."""
    from pathlib import Path

    p = Path(path)
    return p.stem if p.parent.parent == manifests.manifest_dir().resolve() else path


def _datasets(verbose: bool) -> list[dict]:
    from clbench.scenarios.loaders import kind_of

    rows = []
    for name in manifests.list_datasets():
        m = manifests.load_dataset_manifest(name)
        row = {"name": name, "loader": m.loader, "splits": list(m.splits),
               "description": m.description, "origin": m.origin, "hash": m.hash,
               "preparable": kind_of(m).can_prepare}
        if verbose:
            row.update(path=m.path, classes=len(m.class_names), includes=list(m.includes))
        rows.append(row)
    return rows


def _models() -> list[dict]:
    rows = [{"arch": PROXY_MODEL[0], "pretrained": PROXY_MODEL[1], "note": PROXY_MODEL[2]}]
    rows += [{"arch": arch, "pretrained": tag, "note": note}
             for arch, (tag, note) in PAPER_BACKBONES.items()]
    return rows


def render(what: str, verbose: bool = False, as_json: bool = False) -> str:
    if what == "strategies":
        rows = _strategies(verbose)
    elif what == "scenarios":
        rows = _scenarios(verbose)
    elif what == "datasets":
        rows = _datasets(verbose)
    else:
        rows = _models()
    if as_json:
        return json.dumps(rows, indent=2, default=str)
    lines = []
    if what == "strategies":
        for r in rows:
            lines.append(f"{r['name']:<18} {r['summary']}"
                         + (f"  [{r['source']}]" if r["source"] != "built-in" else ""))
            if r.get("broken"):
                lines.append(f"    BROKEN: {r['broken']}")
            for p in r.get("params", []):
                allowed = f", allowed {p['range']}" if p["range"] else ""
                lines.append(f"    {p['name']:<16} {p['type']:<24} default {p['default']!r}"
                             f"{allowed}: {p['help']}")
    elif what == "scenarios":
        for r in rows:
            shots = f"{r['shots']}-shot, " if r["shots"] else ""
            lines.append(f"{r['name']:<19} {r['protocol']:<9} {shots}{r['sessions']} session(s); "
                         f"eval: {', '.join(r['eval_sets'])}" + _origin(r))
            if verbose:
                if r["includes"]:
                    lines.append(f"    includes: {' <- '.join(r['includes'])}")
                lines.append(f"    file: {r['path']}  hash: {r['hash']}")
                lines.append(f"    sessions: {r['sessions_described']}  "
                             f"training: {r['training']}")
                for strategy, keys in r["strategy_training"].items():
                    lines.append(f"      {strategy}: {keys}")
    elif what == "datasets":
        for r in rows:
            lines.append(f"{r['name']:<16} {r['loader']:<8} splits: {', '.join(r['splits'])}  "
                         f"{r['description']}" + _origin(r))
            if verbose:
                lines.append(f"    file: {r['path']}  hash: {r['hash']}  classes: "
                             f"{r['classes'] or '(from the loader)'}"
                             + ("  (clbench data prepare)" if r["preparable"] else ""))
    else:
        for r in rows:
            lines.append(f"{r['arch']:<16} {r['pretrained']:<22} {r['note']}")
        lines.append("(any open_clip architecture and tag works: --model ARCH --pretrained TAG, "
                     "or --checkpoint PATH)")
    return "\n".join(lines)


def _origin(row: dict) -> str:
    return "" if row["origin"] == manifests.BUILT_IN else f"  [user: {row['origin']}]"
