"""Where a sweep stands: each expanded run's state from the results store (and, for a run the
store does not hold, from its worker's record), and the status table.

A run is matched with the stored runs by the identity `clbench.sweep.plan.identity` computed for it:
the fields `Store.find_duplicate` compares (config hash, scenario manifest hash, model
architecture, pretrained tag, checkpoint sha256, seed), among runs that are not tuning trials
(`clbench tune` stores those with the same config hash, evaluated on validation data). Of the
matches, a completed run wins, then one in progress, then the latest failure.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clbench.errors import UserError
from clbench.sweep.plan import RunSpec, Sweep

COMPLETED, RUNNING, FAILED, QUEUED = "completed", "running", "failed", "queued"
STATUSES = (QUEUED, RUNNING, COMPLETED, FAILED)


@dataclass
class RunState:
    status: str  # queued | running | completed | failed
    run_id: str | None = None
    error: str | None = None
    time_s: float | None = None
    source: str = "store"  # store, or job (a worker's record: failed before the store had it)
    log: str | None = None


def open_store_for_reading(url: str):
    """The store at `url` to read, or None where no database file exists yet (nothing is
    created)."""
    from clbench.store import Store
    from clbench.store.location import parse_url, sqlite_path

    file = sqlite_path(parse_url(url))
    if file is not None and not file.exists():
        return None
    store = Store(url, create=False)
    if store.writable:  # keep statuses true: runs whose process died are marked failed
        try:
            store.mark_stale_runs()
        except UserError:
            pass
    return store


class StoreMatcher:
    """Finds, for each run of a sweep, the stored runs with its identity. One bulk query
    (`Store.runs_overview`) per look; the few candidates with the same config hash and seed are
    read once (`Store.get_run`) for the fields the overview lacks (manifest hash, checkpoint
    sha256, purpose), which never change once a run is recorded."""

    def __init__(self, store):
        self.store = store
        self._fixed: dict[str, dict[str, Any]] = {}

    def _details(self, run_id: str) -> dict[str, Any]:
        if run_id not in self._fixed:
            run = self.store.get_run(run_id)
            config = run.get("config") or {}
            self._fixed[run_id] = {
                "scenario_manifest_hash": run.get("scenario_manifest_hash"),
                "model_checkpoint_sha256": run.get("model_checkpoint_sha256"),
                "purpose": config.get("purpose")}
        return self._fixed[run_id]

    def states(self, specs: list[RunSpec]) -> dict[str, RunState]:
        by_hash: dict[tuple[str, int], list[dict]] = {}
        for row in self.store.runs_overview():
            by_hash.setdefault((row["config_hash"], row["seed"]), []).append(row)
        out = {}
        for spec in specs:
            ident = spec.identity
            matches = []
            for row in by_hash.get((ident["config_hash"], ident["seed"]), []):
                if row["model_arch"] != ident["model_arch"] or \
                        row["model_pretrained"] != ident["model_pretrained"]:
                    continue
                details = self._details(row["id"])
                if details["purpose"] is not None:  # a tuning trial, evaluated on validation
                    continue
                if details["scenario_manifest_hash"] != ident["scenario_manifest_hash"] or \
                        details["model_checkpoint_sha256"] != ident["model_checkpoint_sha256"]:
                    continue
                matches.append(row)
            out[spec.key] = _state_of(matches)
        return out


def _state_of(rows: list[dict]) -> RunState:
    """Completed wins (the run is done), then a running attempt, then the latest failure."""
    for status in (COMPLETED, RUNNING, FAILED):
        found = [r for r in rows if r["status"] == status]
        if found:
            row = max(found, key=lambda r: str(r["created_at"]))
            return RunState(status, row["id"], row.get("error"), row.get("total_time_s"))
    return RunState(QUEUED)


def read_record(folder: Path, key: str) -> dict[str, Any] | None:
    """A worker's record of its last attempt at a run (None if it never wrote one)."""
    try:
        return json.loads((folder / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None


def sweep_states(sweep: Sweep, url: str) -> dict[str, RunState]:
    """Each run's state: from the store, or, for a run the store does not hold, a worker's
    record of a failure that came before the run was recorded (data missing on a node, a job
    killed while it started)."""
    store = open_store_for_reading(url)
    try:
        states = StoreMatcher(store).states(sweep.runs) if store is not None else {
            r.key: RunState(QUEUED) for r in sweep.runs}
    finally:
        if store is not None:
            store.close()
    records = sweep.executor.records()
    for run in sweep.runs:
        record = read_record(records, run.key)
        if record and states[run.key].status == QUEUED and record.get("status") == FAILED:
            states[run.key] = RunState(FAILED, record.get("run_id"), record.get("error"),
                                       source="job", log=record.get("log"))
        elif record and states[run.key].status == FAILED:
            states[run.key].log = record.get("log")
    return states


# --------------------------------------------------------------------------- tables


def counts(states: dict[str, str]) -> dict[str, int]:
    out = {s: 0 for s in STATUSES}
    for status in states.values():
        out[status] = out.get(status, 0) + 1
    return out


def counts_line(numbers: dict[str, int]) -> str:
    return " | ".join(f"{s} {numbers.get(s, 0)}" for s in STATUSES)


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def status_table(sweep: Sweep, states: dict[str, RunState]) -> str:
    """A row per run (columns that are the same for every run go to the header), the counts,
    and each failure's error."""
    from clbench.run.report import table

    runs = sweep.runs
    columns = {"strategy": lambda r: r.strategy, "setting": lambda r: r.setting,
               "scenario": lambda r: r.scenario, "model": lambda r: r.model}
    # a column whose value is the same for every run is said once, in the header
    shown = {h: f for h, f in columns.items() if h == "strategy" or len({f(r) for r in runs}) > 1}
    fixed = [f"{h} {f(runs[0])}" for h, f in columns.items() if h not in shown and f(runs[0])]
    rows = []
    for run in runs:
        state = states[run.key]
        time_s = f"{state.time_s:.0f} s" if state.time_s is not None else ""
        rows.append([run.index + 1, *(f(run) for f in shown.values()), run.seed, state.status,
                     (state.run_id or "")[:12], time_s])
    lines = [f"sweep {sweep.name} ({sweep.path}): {len(runs)} run(s)"
             + (f"; {', '.join(fixed)}" if fixed else ""),
             counts_line(counts({k: s.status for k, s in states.items()})), "",
             table(["#", *shown, "seed", "status", "run", "time"], rows)]
    failed = [(r, states[r.key]) for r in runs if states[r.key].status == FAILED]
    if failed:
        lines += ["", "failures:"]
        for run, state in failed:
            where = f" (run {state.run_id[:12]})" if state.run_id else ""
            log = f"; log {state.log}" if state.log else ""
            lines.append(f"  #{run.index + 1} {run.label()}{where}: "
                         f"{_first_line(state.error) or 'no error recorded'}{log}")
    return "\n".join(lines)


def status_json(sweep: Sweep, states: dict[str, RunState]) -> dict[str, Any]:
    return {"sweep": sweep.name, "file": str(sweep.path),
            "counts": counts({k: s.status for k, s in states.items()}),
            "runs": [{"index": r.index + 1, "key": r.key, "strategy": r.strategy,
                      "setting": r.setting, "scenario": r.scenario, "model": r.model,
                      "seed": r.seed, **asdict(states[r.key])} for r in sweep.runs]}
