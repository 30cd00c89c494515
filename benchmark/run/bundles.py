"""Result bundles: completed runs as one self-contained, versioned JSON file that anyone can
import into another store, checked before anything is written.

A bundle holds, per run, every stored field (config, provenance, summary), its sessions (with
the drawn sample ids), every evaluation and the per-sample predictions behind them (the
predicted class index and the true label of every test sample), so any metric can be
recomputed later and every stored accuracy is checked against them on import. A SHA-256
digest over the canonical JSON of the rest catches any edit. Format:

    {"format": "clbench-results-bundle", "version": 1, "created_at": ..., "clbench": "0.1.0",
     "submitter": {"name": ..., "paper": ..., "code": ...}, "runs": [...], "digest": "..."}

Import checks, in order, and stops at the first problem (nothing is written then): JSON, the
format and version (a newer one is refused, older ones are converted by `CONVERTERS`), the
digest, each run's required fields, finite accuracies in [0, 1], the evaluations against the
scenario's declaration here (sessions, eval sets, sample counts), every "all" accuracy against
the stored predictions, and duplicates in the store (same config hash, manifest hash, model and
seed: reported and skipped). The rest is written in one transaction.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from clbench.errors import UserError

FORMAT = "clbench-results-bundle"
VERSION = 1
# bundle version -> a function upgrading such a bundle to the next version (none older yet)
CONVERTERS: dict[int, Callable[[dict], dict]] = {}
REQUIRED_RUN_FIELDS = ("id", "status", "strategy", "strategy_config", "scenario",
                       "scenario_manifest_hash", "model_arch", "seed", "config", "config_hash",
                       "training_config", "created_at", "summary", "sessions", "evaluations",
                       "predictions")
SUBMITTER_FIELDS = ("name", "paper", "code")


class BundleError(UserError):
    """A bundle that cannot be exported or imported; the message names the first problem."""


def digest(bundle: dict) -> str:
    """SHA-256 of the canonical JSON of everything but the digest itself."""
    import hashlib

    body = {k: v for k, v in bundle.items() if k != "digest"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- export


def export(store, run_ids: list[str], submitter: dict[str, str] | None = None) -> dict:
    """A bundle of these completed runs (ids or unique prefixes)."""
    from clbench import __version__

    runs = []
    for run_id in dict.fromkeys(run_ids):
        run = store.get_run(run_id)
        if run["status"] != "completed":
            raise BundleError(f"run {run['id']} is {run['status']}: only completed runs are "
                              "exported", hint="`clbench runs` lists the completed ones")
        predictions = store.predictions_of(run["id"])
        if not predictions:
            raise BundleError(f"run {run['id']} has no stored predictions (it was recorded "
                              "before clbench stored them), so its accuracies could not be "
                              "checked by whoever imports it",
                              hint="run it again with this clbench and export the new run")
        runs.append({**run, "predictions": predictions})
    bundle = {"format": FORMAT, "version": VERSION,
              "created_at": datetime.now(timezone.utc).isoformat(), "clbench": __version__,
              "submitter": {k: v for k, v in (submitter or {}).items() if v}, "runs": runs}
    bundle["digest"] = digest(json.loads(json.dumps(bundle, default=str)))
    return bundle


def write(bundle: dict, path: Path) -> None:
    """Write the bundle as JSON (through a temporary file, so a reader never sees half)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(bundle, default=str))
    tmp.replace(path)


# --------------------------------------------------------------------------- reading and checks


def read(path: Path) -> dict:
    """The bundle at `path`, parsed, at the current version, its digest checked."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise BundleError(f"no bundle at {path}", hint="give the file `clbench export` "
                          "wrote") from None
    except (OSError, UnicodeDecodeError) as err:
        raise BundleError(f"cannot read {path}: {err}") from None
    try:
        bundle = json.loads(text)
    except json.JSONDecodeError as err:
        raise BundleError(f"{path} is not JSON: {err.msg} at line {err.lineno}, column "
                          f"{err.colno}") from None
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise BundleError(f"{path} is not a clbench results bundle (no \"format\": "
                          f"\"{FORMAT}\")")
    version = bundle.get("version")
    if not isinstance(version, int) or version < 1:
        raise BundleError(f"{path}: bundle version {version!r} is not a positive integer")
    if version > VERSION:
        raise BundleError(f"{path} was written by a newer clbench (bundle version {version}; "
                          f"this one reads up to {VERSION})", hint="upgrade clbench to import it")
    if bundle.get("digest") != digest(bundle):
        raise BundleError(f"{path}: the digest does not match the content (the file was "
                          "edited or damaged after export)", hint="export it again")
    while bundle["version"] < VERSION:  # older formats, upgraded step by step
        bundle = CONVERTERS[bundle["version"]](bundle)
    if not isinstance(bundle.get("runs"), list) or not bundle["runs"]:
        raise BundleError(f"{path}: the bundle holds no runs")
    return bundle


def check_run(run: Any, declared: Callable[[str], Any]) -> None:
    """Every check of one run; `declared(scenario)` gives the scenario manifest here."""
    if not isinstance(run, dict):
        raise BundleError(f"a run entry is {type(run).__name__}, not an object")
    name = f"run {run.get('id', '?')}"
    missing = [k for k in REQUIRED_RUN_FIELDS if k not in run]
    if missing:
        raise BundleError(f"{name}: missing field(s) {', '.join(missing)}")
    if run["status"] != "completed":
        raise BundleError(f"{name}: status {run['status']!r}; only completed runs are results")
    evaluations = run["evaluations"]
    for e in evaluations:
        accuracy = e.get("accuracy")
        if not isinstance(accuracy, (int, float)) or not math.isfinite(accuracy) \
                or not 0 <= accuracy <= 1:
            raise BundleError(f"{name}: accuracy {accuracy!r} (after session "
                              f"{e.get('after_session')}, {e.get('eval_set')}, "
                              f"{e.get('subset')}) is not a number in [0, 1]")
    _check_declaration(run, name, declared(run["scenario"]))
    _check_predictions(run, name)


def _check_declaration(run: dict, name: str, manifest) -> None:
    if run["scenario_manifest_hash"] != manifest.hash:
        raise BundleError(f"{name}: scenario {run['scenario']} is declared differently here "
                          f"(manifest hash {manifest.hash} here, "
                          f"{run['scenario_manifest_hash']} in the bundle)",
                          hint="import it with the clbench (and manifests) that ran it")
    sessions = manifest.session_count
    if len(run["sessions"]) != sessions:
        raise BundleError(f"{name}: {len(run['sessions'])} session(s) stored; scenario "
                          f"{run['scenario']} declares {sessions}")
    controls = (run["config"] or {}).get("controls") or list(manifest.eval_sets)
    expected = {*manifest.stream_eval_sets, *controls}
    found = {e["eval_set"] for e in run["evaluations"]}
    if found != expected:
        unknown, absent = sorted(found - expected), sorted(expected - found)
        raise BundleError(f"{name}: evaluations " + (f"for unknown eval set(s) "
                          f"{', '.join(unknown)}" if unknown else
                          f"missing eval set(s) {', '.join(absent)}")
                          + f" (scenario {run['scenario']} evaluates {', '.join(sorted(expected))})")
    for eval_set in expected:
        rows = {e["after_session"] for e in run["evaluations"]
                if e["eval_set"] == eval_set and e["subset"] == "all"}
        if rows != set(range(sessions + 1)):
            raise BundleError(f"{name}: {eval_set} is not evaluated after every session "
                              f"(found after {sorted(rows)}, expected 0..{sessions})")


def _check_predictions(run: dict, name: str) -> None:
    predictions = {(p.get("after_session"), p.get("eval_set")): p for p in run["predictions"]}
    for e in run["evaluations"]:
        key = (e["after_session"], e["eval_set"])
        where = f"after session {key[0]}, {key[1]}"
        if e["subset"] != "all":
            if e["n"] > len((predictions.get(key) or {}).get("labels", [])):
                raise BundleError(f"{name}: {where}, {e['subset']} counts more samples than "
                                  "the eval set has")
            continue
        p = predictions.get(key)
        if p is None:
            raise BundleError(f"{name}: no predictions for {where}")
        predicted, labels = p.get("predicted") or [], p.get("labels") or []
        if len(predicted) != len(labels) or len(labels) != e["n"]:
            raise BundleError(f"{name}: {where}: {len(predicted)} predictions and "
                              f"{len(labels)} labels for {e['n']} samples")
        recomputed = sum(a == b for a, b in zip(predicted, labels)) / max(1, len(labels))
        # one sample more or less right moves it by 1/n; float32 rounding by far less
        if abs(recomputed - e["accuracy"]) >= 0.5 / max(1, len(labels)):
            raise BundleError(f"{name}: {where}: stored accuracy {e['accuracy']:.6f} but the "
                              f"stored predictions give {recomputed:.6f}")


# --------------------------------------------------------------------------- import


def import_into(store, bundle: dict, declared: Callable[[str], Any],
                source: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Check every run, then write the new ones in one transaction. Returns (imported ids,
    [(skipped id, the stored duplicate's id)])."""
    for run in bundle["runs"]:
        check_run(run, declared)
    imported, skipped, new = [], [], []
    for run in bundle["runs"]:
        duplicate = store.find_duplicate(run)
        if duplicate is not None:
            skipped.append((run["id"], duplicate))
            continue
        note = {"bundle": source, "digest": bundle["digest"],
                "submitter": bundle.get("submitter") or {},
                "imported_at": datetime.now(timezone.utc).isoformat()}
        new.append({**run, "config": {**run["config"], "imported": note}})
        imported.append(run["id"])
    if new:
        store.import_runs(new)
    return imported, skipped

