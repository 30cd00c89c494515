"""Leaderboard tables as pure functions of the loaded runs (pandas in, pandas out).

Only completed runs reach these functions (`data.load` drops failed and running ones). A row
stands for one strategy preset: per seed the runs are averaged first, then mean and sample std
are taken over seeds, and the seed count is shown, so a preset run on more seeds is not
mistaken for a better one. Each metric's direction comes from `clbench.metrics.METRICS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from clbench.metrics import METRICS

ZERO_SHOT = "zero-shot (reference)"
# Strategies whose runs are reference rows (the zero-shot strategy, the joint-replay upper
# bound): placed by the ranking metric but never given a rank among the methods. The same set
# as `clbench.strategies.registry.REFERENCE` (a test checks; tables import nothing above core).
REFERENCE_STRATEGIES: frozenset[str] = frozenset({"zeroshot", "joint-replay"})
ZERO_SHOT_STRATEGY = "zeroshot"  # its runs are summed up by the zero-shot reference row
REFERENCE_SUFFIX = " (reference)"


@dataclass
class Filters:
    """What the sidebar selects; None means "any"."""

    scenario: str | None = None
    backbone: str | None = None
    shots: list[int] | None = None
    strategies: list[str] | None = None
    since: date | None = None
    until: date | None = None
    commit: str = "any"  # "any", "clean" (committed code), "dirty" (uncommitted or unknown)


def control_names(runs: pd.DataFrame) -> list[str]:
    """Control eval sets in the order they first appear in the runs' summaries (the
    `control:<name>:final` columns of `data.runs_frame`)."""
    names = [c.split(":")[1] for c in runs.columns if c.startswith("control:")
             and c.endswith(":final")]
    return list(dict.fromkeys(names))


def options(runs: pd.DataFrame, column: str) -> list:
    """Sorted distinct values of a runs column (filter choices)."""
    if runs.empty or column not in runs:
        return []
    return sorted(runs[column].dropna().unique().tolist())


def context(runs: pd.DataFrame, f: Filters) -> pd.DataFrame:
    """Runs of the chosen scenario, backbone and shots: the population the zero-shot reference
    is computed on, whatever strategy, date or commit filter is set."""
    keep = pd.Series(True, index=runs.index)
    if runs.empty:
        return runs
    if f.scenario is not None:
        keep &= runs["scenario"] == f.scenario
    if f.backbone is not None:
        keep &= runs["backbone"] == f.backbone
    if f.shots:
        keep &= runs["shots"].isin(f.shots)
    return runs[keep]


def filter_runs(runs: pd.DataFrame, f: Filters) -> pd.DataFrame:
    """Runs that pass every filter."""
    runs = context(runs, f)
    if runs.empty:
        return runs
    keep = pd.Series(True, index=runs.index)
    if f.strategies:
        keep &= runs["strategy"].isin(f.strategies)
    day = runs["created_at"].dt.date
    if f.since is not None:
        keep &= day >= f.since
    if f.until is not None:
        keep &= day <= f.until
    if f.commit == "clean":
        keep &= runs["clean"]
    elif f.commit == "dirty":
        keep &= ~runs["clean"]
    return runs[keep]


@dataclass(frozen=True)
class Column:
    """A leaderboard metric column: where it comes from, its METRICS entry and its scale."""

    name: str
    label: str
    metric: str
    scale: float = 100.0  # fractions shown in %
    unit: str | None = None  # when it differs from the metric's (a control's accuracy: %)

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.metric].higher_is_better

    @property
    def unit_text(self) -> str:
        return self.unit or METRICS[self.metric].unit

    @property
    def tooltip(self) -> str:
        """The column's definition, unit and direction (the table's hover help)."""
        spec = METRICS[self.metric]
        definition = spec.definition
        if self.name.startswith("control:") and self.name.endswith(":final"):
            definition = "this control set's accuracy after the last session"
        better = "higher" if self.higher_is_better else "lower"
        return f"{definition} ({self.unit_text}; {better} is better)"

    @property
    def header(self) -> str:
        return f"{self.label} {'↑' if self.higher_is_better else '↓'}"


def metric_columns(controls: list[str]) -> list[Column]:
    """The leaderboard's metric columns in display order."""
    cols = [Column("balanced", METRICS["balanced"].label, "balanced"),
            Column("final_accuracy", METRICS["final_accuracy"].label, "final_accuracy"),
            Column("target_gain", METRICS["target_gain"].label, "target_gain")]
    for name in controls:
        # a control's accuracy and its change against zero-shot: both better when higher
        cols.append(Column(f"control:{name}:final", f"{name} accuracy", "control_change",
                           unit="%"))
        cols.append(Column(f"control:{name}:change", f"{name} change vs zero-shot",
                           "control_change"))
    # the last-row mean ("average accuracy") is left out: with sessions of equal size it is
    # the final accuracy again; Avg and plasticity say what it does not
    cols += [Column("average_incremental_accuracy", METRICS["average_incremental_accuracy"].label,
                    "average_incremental_accuracy"),
             Column("plasticity", METRICS["plasticity"].label, "plasticity"),
             Column("forgetting", METRICS["forgetting"].label, "forgetting"),
             Column("trainable_percent", "trainable %", "trainable_percent", 1.0),
             Column("time_per_session_s", "train s / session", "time_per_session_s", 1.0)]
    return cols


def seed_stats(frame: pd.DataFrame, cols: list[Column]) -> pd.DataFrame:
    """Per `group`: runs averaged per seed, then mean and sample std over seeds of every metric
    column (std NaN with one seed), with the counts of seeds and runs. Vectorised: one groupby
    for all groups, as 1,000 runs must rank fast."""
    names = [c.name for c in cols if c.name in frame]
    per_seed = frame.groupby(["group", "seed"], sort=False)[names].mean()
    by_group = per_seed.groupby(level="group", sort=True)
    mean, std = by_group.mean(), by_group.std(ddof=1)
    out = pd.DataFrame(index=mean.index)
    out["seeds"] = by_group.size()
    out["runs"] = frame.groupby("group").size()
    for c in cols:
        present = c.name in mean
        out[c.name] = mean[c.name] * c.scale if present else float("nan")
        out[c.name + " ±"] = std[c.name] * c.scale if present else float("nan")
    return out


def zero_shot_row(population: pd.DataFrame, controls: list[str]) -> dict:
    """The reference row: every run's session-0 accuracies (zero-shot), over seeds.

    Gains, changes, forgetting, trainable share and time are zero by definition.
    """
    cols = metric_columns(controls)
    frame = pd.DataFrame({"seed": population.get("seed", pd.Series(dtype=float))})
    if not population.empty:
        frame["final_accuracy"] = population["zero_shot_accuracy"]
        frame["average_incremental_accuracy"] = population["zero_shot_accuracy"]
        for name in controls:
            column = f"control:{name}:zero_shot"
            frame[f"control:{name}:final"] = population.get(column)
    for c in cols:
        if c.name not in frame:
            frame[c.name] = 0.0
    frame["group"] = ZERO_SHOT
    row = {"strategy": ZERO_SHOT, "preset": "", "group": ZERO_SHOT}
    stats = seed_stats(frame, cols)
    if stats.empty:  # no run of this scenario and backbone: the reference is unknown
        row.update({"seeds": 0, "runs": 0})
        row.update({name: float("nan") for c in cols for name in (c.name, c.name + " ±")})
    else:
        row.update(stats.iloc[0].to_dict())
    return row


DEFAULT_RANK = "balanced"  # the one score for "improved the target without destroying the rest"


def leaderboard(runs: pd.DataFrame, f: Filters, rank_by: str = DEFAULT_RANK,
                min_seeds: int = 1,
                references: frozenset[str] = REFERENCE_STRATEGIES) -> pd.DataFrame:
    """One row per strategy preset passing the filters, plus the zero-shot reference row.

    Sorted by `rank_by` in the direction METRICS declares for it (missing values last); the
    reference row is placed by the same rule, so one can see which presets beat zero-shot.
    Presets run on fewer than `min_seeds` seeds are left out (a lucky single seed should not
    top a ranking); the reference row never is. Runs of the `zeroshot` strategy get no row of
    their own: the reference row already holds them (one zero-shot row). Rows of another
    reference strategy (`references`: the joint-replay upper bound) are placed by the same rule,
    shown as "<strategy> (reference)", and have no rank: the methods are numbered among
    themselves.
    """
    population = context(runs, f)
    controls = control_names(population) if not population.empty else []
    cols = metric_columns(controls)
    parts = [pd.DataFrame([zero_shot_row(population, controls)])]
    # zero-shot runs are the reference row already (every run's session 0): no second row
    chosen = filter_runs(runs, f)
    chosen = chosen[chosen["strategy"] != ZERO_SHOT_STRATEGY] if not chosen.empty else chosen
    if not chosen.empty:
        stats = seed_stats(chosen, cols)
        names = chosen.drop_duplicates("group").set_index("group")[["strategy", "preset"]]
        stats = names.join(stats, how="right").rename_axis("group").reset_index()
        parts.append(stats[stats["seeds"] >= min_seeds])
    table = pd.concat(parts, ignore_index=True)
    table[["seeds", "runs"]] = table[["seeds", "runs"]].astype(int)
    by = next((c for c in cols if c.name == rank_by), cols[0])
    table = table.sort_values(by.name, ascending=not by.higher_is_better, na_position="last",
                              kind="stable").reset_index(drop=True)
    reference = table["strategy"].isin(references)
    table.insert(0, "rank", (~reference).cumsum().where(~reference).astype("Int64"))
    table.loc[reference, "strategy"] = table.loc[reference, "strategy"] + REFERENCE_SUFFIX
    return table


def with_std_text(table: pd.DataFrame) -> pd.DataFrame:
    """The std columns as text ("±1.2"; empty with a single seed), for display only."""
    out = table.copy()
    for column in [c for c in out.columns if c.endswith(" ±")]:
        out[column] = ["" if pd.isna(v) else f"±{v:.2f}" if abs(v) < 0.1 and v else f"±{v:.1f}"
                       for v in out[column]]
    return out


def export_csv(table: pd.DataFrame, controls: list[str]) -> bytes:
    """The table as CSV with headers that carry units (accuracies in %, changes in points) and
    directions."""
    out = table.drop(columns=["group"], errors="ignore").copy()
    renamed = {}
    for c in metric_columns(controls):
        unit = c.unit_text
        label = c.label.removesuffix(" %") if unit.startswith("%") else c.label
        if c.name in out:
            renamed[c.name] = f"{label} ({unit}, {'higher' if c.higher_is_better else 'lower'}"\
                              " is better)"
            renamed[c.name + " ±"] = f"{label} std over seeds ({unit})"
    return out.rename(columns=renamed).to_csv(index=False, float_format="%.4f").encode()


def flatten(value: object, prefix: str = "") -> dict:
    """Nested dicts as dotted keys (for side-by-side config comparison)."""
    if isinstance(value, dict):
        out: dict = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def compare_runs(runs: list[dict]) -> pd.DataFrame:
    """Runs side by side: one column per run, one row per config/summary/provenance key, and a
    `differs` flag so that what sets the runs apart can be shown first."""
    flat = []
    for run in runs:
        entry = {"strategy": run.get("strategy"), "seed": run.get("seed"),
                 "status": run.get("status"), "git_sha": run.get("git_sha"),
                 "git_dirty": run.get("git_dirty"), "total_time_s": run.get("total_time_s")}
        entry.update(flatten(run.get("config") or {}, "config"))
        entry.update(flatten(run.get("summary") or {}, "summary"))
        flat.append(entry)
    keys = list(dict.fromkeys(k for e in flat for k in e))
    table = pd.DataFrame({run["id"][:12]: [_cell(e.get(k)) for k in keys]
                          for run, e in zip(runs, flat)}, index=keys)
    table.insert(0, "differs", [table.loc[k].nunique(dropna=False) > 1 for k in keys])
    return table.sort_values("differs", ascending=False, kind="stable")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def sessions_table(run: dict) -> pd.DataFrame:
    """Per-session facts of one run: classes, samples, time, memory, trainable, facts."""
    rows = []
    for s in run.get("sessions", []):
        row = {"session": s["index"], "classes": len(s["classes"]),
               "samples": len(s["sample_ids"]), "train s": s["train_time_s"],
               "peak MB": s.get("peak_memory_mb"), "trainable": s.get("trainable_params")}
        for k, v in (s.get("facts") or {}).items():
            row[k] = v if isinstance(v, (int, float, str)) else str(v)
        rows.append(row)
    return pd.DataFrame(rows)


def provenance(run: dict) -> dict:
    """What a run's numbers can be traced back to: code, packages, hardware, inputs."""
    from clbench.hashing import canonical_hash

    samples = [s["sample_ids"] for s in run.get("sessions", [])]
    config = run.get("config") or {}
    return {
        "git_sha": run.get("git_sha"),
        "git_dirty": run.get("git_dirty"),
        "sample_ids_hash": canonical_hash(samples) if samples else None,
        "dataset_manifest_hashes": config.get("dataset_manifest_hashes"),
        "scenario_manifest_hash": run.get("scenario_manifest_hash"),
        "model_checkpoint_sha256": run.get("model_checkpoint_sha256"),
        "config_hash": run.get("config_hash"),
        "packages": run.get("packages"),
        "hardware": run.get("hardware"),
        "host": run.get("hostname"),
    }
