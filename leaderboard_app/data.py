"""Reading the results store for the leaderboard: read-only opening and three bulk queries.

The app must never write: it opens the store with `Store(url, read_only=True)`, which opens an
SQLite file through a `mode=ro` URI (SQLite itself then refuses writes and never creates a
missing file; on a read-only disk, as immutable), never marks stale runs failed and refuses
every write. Everything the pages show is built from `Data`, three pandas frames read with one
query each, so 1,000 runs cost three queries, not 3,000 (the evaluations only when a page draws
curves).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from clbench.hashing import canonical_hash
from clbench.metrics import DEFAULT_SEEDS, SESSION, SUMMARY, check_purpose, shown_in, stored_value
from clbench.store import SCHEMA_VERSION, Store, StoreError, UncheckpointedLog, resolve_db_url

RUN_HINT = "clbench run --strategy fft --scenario proxy-20shot --db {db}"
THIRD_PARTY = "third-party"  # `config.strategy_source.source` of a plugin package's run


class StoreProblem(Exception):
    """The store cannot back a leaderboard; `what` says what is wrong, `todo` what to run."""

    def __init__(self, title: str, what: str, todo: str):
        super().__init__(what)
        self.title = title
        self.what = what
        self.todo = todo


def open_store(db: str | None) -> Store:
    """Open the results store read-only, or raise StoreProblem with what to do about it."""
    url = resolve_db_url(db)
    shown = db or url
    if url.startswith("sqlite:///") and "file:" not in url:
        path = Path(url[len("sqlite:///"):])
        if not path.is_file():
            raise StoreProblem(
                "No results database",
                f"there is no results database at {path}.",
                "Record runs into it first, e.g.\n\n    " + RUN_HINT.format(db=path)
                + "\n\nor start the app on an existing one: clbench app --db PATH",
            )
    try:
        return Store(url, read_only=True, shown_as=shown)
    except StoreError as exc:
        text = str(exc)
        if isinstance(exc, UncheckpointedLog):
            raise StoreProblem("Results database published without a checkpoint", text,
                               exc.hint or "") from exc
        if "schema version" in text:
            title = "Results database from another schema"
            todo = (exc.hint or "") + (
                f"\n\nThis app reads schema version {SCHEMA_VERSION}: record new runs with this "
                "clbench into a new database and point the app at it (clbench app --db NEW.db).")
        else:
            title = "Cannot open the results database"
            todo = (exc.hint or "") + "\n\nCheck the URL (clbench app --db URL) and that the " \
                "database server is reachable from here."
        raise StoreProblem(title, text, todo.strip()) from exc


EVAL_COLUMNS = ["run_id", "after_session", "eval_set", "subset", "accuracy", "n"]


class Data:
    """Completed runs and their sessions, read at once; their evaluations, read on first use
    (the leaderboard itself needs only the runs' summaries, the curves need every accuracy)."""

    def __init__(self, runs: pd.DataFrame, sessions: pd.DataFrame,
                 other_statuses: dict[str, int], store: Store | None = None,
                 evals: pd.DataFrame | None = None):
        self.runs = runs
        self.sessions = sessions
        self.other_statuses = other_statuses
        self._store = store
        self._evals = evals

    @property
    def evals(self) -> pd.DataFrame:
        if self._evals is None:
            rows = self._store.evaluations_of(["completed"]) if self._store else []
            self._evals = pd.DataFrame.from_records(rows, columns=EVAL_COLUMNS)
        return self._evals


def _flat_params(strategy_config: dict | None, training_config: dict | None) -> dict:
    out = {f"{k}": v for k, v in (strategy_config or {}).items()}
    out.update({f"{k}": v for k, v in (training_config or {}).items()})
    return out


def _fmt_value(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else json.dumps(value) \
        if isinstance(value, (list, dict)) else str(value)


def _fmt_plugins(plugins: object) -> str:
    """Added Avalanche plugins (`--plugin`) as "+EWCPlugin(ewc_lambda=1000, mode=separate)":
    the class name and the arguments that say something (unset ones left out)."""
    if not isinstance(plugins, list):
        return _fmt_value(plugins)
    parts = []
    for p in plugins:
        if not isinstance(p, dict):
            parts.append(_fmt_value(p))
            continue
        args = ", ".join(f"{k}={_fmt_value(v)}" for k, v in (p.get("args") or {}).items()
                         if v not in (None, False))
        parts.append(f"+{str(p.get('class', '?')).rsplit('.', 1)[-1]}({args})")
    return " ".join(parts)


def preset_labels(runs: pd.DataFrame) -> pd.Series:
    """A short label per run naming the settings that set its preset apart from the other
    presets of the same strategy in the same scenario ("lr=0.0001"; a row never mixes
    scenarios, so settings that differ only between scenarios are left out); empty where a
    strategy has one preset in a scenario."""
    presets = runs.drop_duplicates(["scenario", "preset_key"])
    labels: dict[tuple[str, str], str] = {}
    for (scenario, _), group in presets.groupby(["scenario", "strategy"], sort=False):
        params = {key: _flat_params(sc, tc) for key, sc, tc in zip(
            group["preset_key"], group["strategy_config"], group["training_config"])}
        keys = sorted({k for p in params.values() for k in p})
        differ = [k for k in keys if len({json.dumps(p.get(k), sort_keys=True, default=str)
                                          for p in params.values()}) > 1]
        for key, p in params.items():
            labels[(scenario, key)] = ", ".join(
                _fmt_plugins(p.get(k)) if k == "plugins" else f"{k}={_fmt_value(p.get(k))}"
                for k in differ if not (k == "plugins" and not p.get(k)))
    return pd.Series([labels.get(k, "") for k in zip(runs["scenario"], runs["preset_key"])],
                     index=runs.index)


def runs_frame(rows: list[dict]) -> pd.DataFrame:
    """One row per completed run with its summary flattened into columns.

    Every metric declared with SUMMARY in its `shown` becomes a column (a control set's as
    `control:<name>:<part>`), backfilled for runs stored before it was declared; `group` is
    strategy plus preset, the unit a leaderboard row stands for. A metric with a list per
    session (a multi-dataset stream's Transfer / Avg / Last per dataset) is a column of lists,
    beside the run's `protocol` and, for a multi-dataset stream, its `datasets` and `matrix`
    (the rows of A[i][j], row 0 = zero-shot), which the matrix page draws.
    """
    records = []
    metric_cols: dict[str, None] = {}
    for r in rows:
        summary = r.get("summary") or {}
        rec = {k: r.get(k) for k in ("id", "status", "created_at", "strategy", "scenario", "seed",
                                     "git_sha", "git_dirty", "total_time_s", "trainable_params",
                                     "total_params", "strategy_config", "training_config")}
        rec["backbone"] = (f"{r['model_arch']}@{r['model_pretrained']}"
                           if r.get("model_pretrained") else r["model_arch"])
        rec["clean"] = bool(r.get("git_sha")) and r.get("git_dirty") is False
        rec["third_party"] = r.get("strategy_source") == THIRD_PARTY  # a plugin package's code
        rec["verified"] = False  # `load` marks the runs the store says were verified
        # who submitted it, for a run imported from a results bundle (`clbench import`)
        submitter = r.get("submitter") if isinstance(r.get("submitter"), dict) else {}
        for key in ("name", "paper", "code"):
            rec[f"submitter_{key}"] = submitter.get(key)
        rec["preset_key"] = canonical_hash([r["strategy"], r.get("strategy_config_hash"),
                                            r.get("training_config")])
        rec["target"] = summary.get("target")
        rec["n_sessions"] = summary.get("sessions")
        # what the run's scenario asked of a result (runs stored before it: the default)
        rec["seeds_required"] = summary.get("seeds_required") or DEFAULT_SEEDS
        rec["protocol"] = summary.get("protocol")
        matrix = summary.get("matrix") if isinstance(summary.get("matrix"), dict) else {}
        rec["datasets"] = matrix.get("datasets") or summary.get("datasets")
        rec["matrix"] = matrix.get("rows")
        for metric, control in shown_in(SUMMARY, summary.get("controls") or {}):
            column = metric.column(control)
            rec[column] = stored_value(metric, summary, control)
            if metric.per != SESSION:  # a list per session fits no number column
                metric_cols[column] = None
        records.append(rec)
    runs = pd.DataFrame.from_records(records)
    if runs.empty:
        return runs
    runs["created_at"] = pd.to_datetime(runs["created_at"], utc=True)
    runs["preset"] = preset_labels(runs)
    runs["group"] = [s if not p else f"{s} ({p})" for s, p in zip(runs["strategy"],
                                                                 runs["preset"])]
    runs[list(metric_cols)] = runs[list(metric_cols)].apply(pd.to_numeric, errors="coerce")
    return runs


def load(store: Store) -> Data:
    """Completed runs with their sessions (two queries; evaluations follow on first use).
    Runs stored by `clbench tune` (scored on validation data) and re-runs by `clbench
    reproduce` are never results: they are counted under "tuning" and "reproduction" with the
    failed and running ones, and left out of every table. A run reproduced within tolerance
    on another host (or imported and reproduced here) is `verified`."""
    rows = store.runs_overview()
    completed = [r for r in rows
                 if r["status"] == "completed" and not check_purpose(r["summary"])]
    other: dict[str, int] = {}
    for r in rows:
        if r["status"] != "completed" or check_purpose(r["summary"]):
            status = check_purpose(r["summary"]) or r["status"]
            other[status] = other.get(status, 0) + 1
    runs = runs_frame(completed)
    if not runs.empty:
        runs["verified"] = runs["id"].isin(store.verified_run_ids())
    sessions = pd.DataFrame.from_records(
        store.session_overview(["completed"]) if completed else [],
        columns=["run_id", "index", "n_classes", "n_samples", "train_time_s", "peak_memory_mb",
                 "trainable_params"])
    if not runs.empty:
        first = sessions[sessions["index"] == 1].set_index("run_id")
        shots = (first["n_samples"] / first["n_classes"].where(first["n_classes"] > 0)).round()
        runs["shots"] = runs["id"].map(shots).astype("Int64")
        per_session = sessions.groupby("run_id")["train_time_s"].mean()
        runs["time_per_session_s"] = runs["id"].map(per_session)
    return Data(runs=runs, sessions=sessions, other_statuses=other, store=store)
