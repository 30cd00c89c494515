"""Leaderboard tables as pure functions of the loaded runs (pandas in, pandas out).

Only completed runs reach these functions (`data.load` drops failed and running ones). A row
stands for one strategy preset: per seed the runs are averaged first, then the mean over seeds
and its 95% confidence interval (Student t, `clbench.metrics.ci95_halfwidth`) are taken, and
the seed count is shown, so a preset run on more seeds is not mistaken for a better one.
Presets run on fewer seeds than their scenario declares (`seeds:`, 3 by default) are left out
unless asked for (`Filters.show_few_seeds`), on every page alike. Every metric column, its
header, tooltip, direction, unit and CSV header come from its declaration in
`clbench.metrics.METRICS`; no list of metrics is kept here, except which of them a protocol's
board opens with (`PROTOCOL_COLUMNS`: a multi-dataset stream shows ZSCL's Transfer / Avg / Last).
Published numbers (`clbench.published`) join a board as "reported" rows, marked and placed after
the measured ones unless asked to be ranked with them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import pandas as pd

from clbench.backbones import PROXY_ALIASES
from clbench.metrics import (
    BOARD_DEFAULT,
    HEADLINE,
    LEADERBOARD,
    METRICS,
    MTIL_BY_DATASET,
    MULTI_DATASET,
    SUMMARY,
    Metric,
    ci95_halfwidth,
    mean_known,
    shown_in,
    split_control_column,
    stored_value,
)
from clbench.published import Published

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
    # presets run on fewer seeds than their scenario declares: hidden unless this is set
    show_few_seeds: bool = False
    origin: str = "any"  # "any", "built-in", "third-party" (strategies from plugin packages)
    verified_only: bool = False  # runs reproduced within tolerance elsewhere (`reproduce`)


def control_names(runs: pd.DataFrame) -> list[str]:
    """Control eval sets of these runs, in the order they first appear in the summaries (the
    `control:<name>:final` columns of `data.runs_frame` that hold a value)."""
    names = [parsed[0] for c in runs.columns if (parsed := split_control_column(c))
             and parsed[1] == "final" and runs[c].notna().any()]  # other scenarios' controls
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
    """Runs that pass every filter, the seed count included: a preset with fewer seeds (among
    the runs the other filters keep) than its scenario declares is dropped unless
    `f.show_few_seeds`."""
    runs = _pass_filters(runs, f)
    if runs.empty or f.show_few_seeds:
        return runs
    seeds = seed_counts(runs)
    return runs[runs["group"].map(seeds["seeds"] >= seeds["seeds_required"])]


def seed_counts(runs: pd.DataFrame) -> pd.DataFrame:
    """Per group: distinct seeds run and seeds required (the most any of its runs' scenario
    declared)."""
    by_group = runs.groupby("group", sort=True)
    return pd.DataFrame({"seeds": by_group["seed"].nunique(),
                         "seeds_required": by_group["seeds_required"].max()})


def few_seed_groups(runs: pd.DataFrame, f: Filters) -> pd.DataFrame:
    """Presets that pass the filters but have fewer seeds than required (what the seed filter
    hides): columns seeds and seeds_required, indexed by group."""
    passing = _pass_filters(runs, f)
    if passing.empty:
        return pd.DataFrame(columns=["seeds", "seeds_required"])
    passing = passing[passing["strategy"] != ZERO_SHOT_STRATEGY]
    seeds = seed_counts(passing)
    return seeds[seeds["seeds"] < seeds["seeds_required"]]


def _pass_filters(runs: pd.DataFrame, f: Filters) -> pd.DataFrame:
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
    if f.verified_only:
        keep &= runs["verified"]
    if f.origin == "built-in":
        keep &= ~runs["third_party"]
    elif f.origin == "third-party":
        keep &= runs["third_party"]
    return runs[keep]


@dataclass(frozen=True)
class Column:
    """A leaderboard metric column: a declared metric (`clbench.metrics.METRICS`), for one
    control set where the metric has a value per set. Everything shown about it (header,
    tooltip, CSV header, digits) is read from the declaration."""

    metric: Metric
    control: str | None = None

    @property
    def name(self) -> str:
        return self.metric.column(self.control)

    @property
    def label(self) -> str:  # full name (CSV headers)
        return self.metric.label_for(self.control)

    @property
    def scale(self) -> float:
        return self.metric.scale

    @property
    def higher_is_better(self) -> bool:
        return self.metric.higher_is_better

    @property
    def unit_text(self) -> str:
        return self.metric.unit

    @property
    def tooltip(self) -> str:
        """The column's definition, unit and direction (the table's hover help)."""
        return self.metric.tooltip(self.control)

    @property
    def header(self) -> str:
        """The table header, narrow enough for many columns at 1600 px, with its direction."""
        return f"{self.metric.short_for(self.control)} {'↑' if self.higher_is_better else '↓'}"


MEAN_CONTROL_CHANGE = "control_change"  # per run: the mean change over the chosen controls


def metric_columns(controls: list[str]) -> list[Column]:
    """The leaderboard's metric columns in display order: the metrics declared with
    LEADERBOARD in their `shown`, a per-control one once per control set."""
    return [Column(metric, control) for metric, control in shown_in(LEADERBOARD, controls)]


def default_columns(protocol: str | None = None) -> tuple[str, ...]:
    """The columns shown before the column chooser is touched (declared BOARD_DEFAULT; rank,
    strategy, preset and seeds are always shown), after those a protocol's board opens with
    (`PROTOCOL_COLUMNS`)."""
    declared = (Column(metric, control).name for metric, control in shown_in(BOARD_DEFAULT))
    return tuple(dict.fromkeys([*PROTOCOL_COLUMNS.get(protocol, ()), *declared]))


# What a protocol's board opens with and ranks by, where the field reports other numbers than
# the balanced score: a multi-dataset stream (MTIL) is read as ZSCL's Table 1 (Zheng et al.,
# ICCV 2023), by its Transfer, Avg and Last, and ranked by Avg.
PROTOCOL_COLUMNS: dict[str, tuple[str, ...]] = {
    MULTI_DATASET: tuple(MTIL_BY_DATASET)}  # ZSCL's Transfer, Avg, Last
PROTOCOL_RANK: dict[str, str] = {MULTI_DATASET: "mtil_avg"}


def protocol_of(runs: pd.DataFrame) -> str | None:
    """The protocol of these runs (one scenario's: summary["protocol"]); None for runs that do
    not say (class-incremental runs stored before the protocol was)."""
    if runs.empty or "protocol" not in runs:
        return None
    found = runs["protocol"].dropna()
    return str(found.iloc[0]) if not found.empty else None


def default_rank(protocol: str | None = None) -> str:
    """What a board ranks by before "Rank by" is touched: the protocol's, else the balanced
    score."""
    return PROTOCOL_RANK.get(protocol, DEFAULT_RANK)


def board_columns(population: pd.DataFrame, controls: list[str]) -> list[Column]:
    """The metric columns a board of these runs offers (column chooser, "Rank by"): those that
    some run holds, so a multi-dataset scenario, whose runs have no target or control change,
    does not offer them, nor a class-incremental one MTIL's Transfer / Avg / Last. Columns the
    leaderboard computes itself (the mean control change) are offered where there are
    controls."""
    cols = metric_columns(controls)
    if population.empty:
        return cols

    def held(c: Column) -> bool:
        if c.name == MEAN_CONTROL_CHANGE:
            return bool(controls)
        return c.name not in population or bool(population[c.name].notna().any())
    return [c for c in cols if held(c)]


def is_proxy(backbone: str | None) -> bool:
    """Whether a backbone ("ARCH@TAG") is the embedded proxy CLIP, whose rankings are facts
    about its own world, not predictions for real CLIPs."""
    return bool(backbone) and str(backbone).split("@")[0] in PROXY_ALIASES


def seed_stats(frame: pd.DataFrame, cols: list[Column]) -> pd.DataFrame:
    """Per `group`: runs averaged per seed, then the mean over seeds of every metric column and
    the half-width of its 95% confidence interval in "<column> ±" (NaN with one seed), with
    the counts of seeds and runs. Vectorised: one groupby for all groups, as 1,000 runs must
    rank fast."""
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
        out[c.name + " ±"] = (ci95_halfwidth(std[c.name] * c.scale, out["seeds"]) if present
                              else float("nan"))
    return out


def with_mean_control_change(runs: pd.DataFrame, controls: list[str]) -> pd.DataFrame:
    """`runs` with MEAN_CONTROL_CHANGE: per run, the mean change over `controls` (before the
    seed statistics, so that its interval is that of the mean, not a mean of intervals)."""
    per_set = METRICS["control:change"]
    changes = [per_set.column(c) for c in controls if per_set.column(c) in runs]
    out = runs.copy()
    out[MEAN_CONTROL_CHANGE] = runs[changes].mean(axis=1) if changes else float("nan")
    return out


def _at_zero_shot(c: Column, population: pd.DataFrame) -> object:
    """The zero-shot model's value of a column (its declaration's `at_zero_shot`): another
    column of every run (the zero-shot accuracy stored with it), a constant, or unknown."""
    ref = c.metric.at_zero_shot
    if not isinstance(ref, str):
        return ref
    column = METRICS[ref].column(c.control)
    return population[column] if column in population else float("nan")


def zero_shot_row(population: pd.DataFrame, controls: list[str]) -> dict:
    """The reference row: every run's session-0 accuracies (zero-shot), over seeds.

    Each column takes the value its metric declares for the zero-shot model (`at_zero_shot`):
    gains, changes, forgetting, trainable share and time are zero by definition (and have no
    interval), accuracies come from the runs' zero-shot evaluations, others are unknown.
    """
    cols = metric_columns(controls)
    frame = pd.DataFrame({"seed": population.get("seed", pd.Series(dtype=float))})
    constants = []
    for c in cols:
        value = _at_zero_shot(c, population) if not population.empty else None
        if value is None:
            value = float("nan")
        if not isinstance(value, pd.Series):
            constants.append(c.name)
        frame[c.name] = value
    frame["group"] = ZERO_SHOT
    row = {"strategy": ZERO_SHOT, "preset": "", "group": ZERO_SHOT, "seeds_required": 0}
    stats = seed_stats(frame, cols)
    if stats.empty:  # no run of this scenario and backbone: the reference is unknown
        row.update({"seeds": 0, "runs": 0})
        row.update({name: float("nan") for c in cols for name in (c.name, c.name + " ±")})
    else:
        row.update(stats.iloc[0].to_dict())
        for name in constants:  # a change against itself is 0 by definition: no interval
            row[name + " ±"] = float("nan")
    return row


DEFAULT_RANK = "balanced"  # the one score for "improved the target without destroying the rest"
REPORTED = "reported"  # a reported row's flag column, its seeds cell and its preset's prefix
REPORTED_COLUMNS = ("reported", "reported_reference", "source")  # only when there are some


def reported_for(published: Iterable[Published], scenario: str | None) -> list[Published]:
    """The published entries of one scenario (whatever their backbone: the row names it)."""
    return [p for p in published if scenario is not None and p.scenario == scenario]


def reported_controls(entries: Iterable[Published]) -> list[str]:
    """Control sets the entries report a number for (control:<set>:<part>), in order."""
    return list(dict.fromkeys(parsed[0] for p in entries for name in p.metrics
                              if (parsed := split_control_column(name))))


def reported_rows(entries: list[Published], cols: list[Column]) -> pd.DataFrame:
    """One leaderboard row per published entry: its numbers as they were printed (in the
    columns' units, no interval), "reported · <backbone>" as its preset, its paper, table and
    source in `source`. A method reported twice for the scenario is told apart by its paper."""
    twice = Counter(p.method for p in entries)
    rows = []
    for p in entries:
        row = {"strategy": p.method, "group": f"{p.method} ({REPORTED}"
               + (f", {p.cited})" if twice[p.method] > 1 else ")"),
               "preset": f"{REPORTED} · {p.backbone}", "seeds": 0, "runs": 0,
               "seeds_required": 0, "reported": True, "reported_reference": p.reference,
               "source": f"{p.cited}; {p.source}"}
        for c in cols:
            row[c.name] = p.metrics.get(c.name, float("nan"))
            row[c.name + " ±"] = float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def leaderboard(runs: pd.DataFrame, f: Filters, rank_by: str = DEFAULT_RANK,
                mean_of: list[str] | None = None,
                references: frozenset[str] = REFERENCE_STRATEGIES,
                published: Iterable[Published] = (),
                rank_published: bool = False) -> pd.DataFrame:
    """One row per strategy preset passing the filters, plus the zero-shot reference row.

    Sorted by `rank_by` in the direction METRICS declares for it (missing values last); the
    reference row is placed by the same rule, so one can see which presets beat zero-shot.
    Presets run on fewer seeds than their scenario declares are left out unless
    `f.show_few_seeds` (then `few_seeds` marks them); the reference row never is. Runs of the
    `zeroshot` strategy get no row of their own: the reference row already holds them (one
    zero-shot row). Rows of another reference strategy (`references`: the joint-replay upper
    bound) are placed by the same rule, shown as "<strategy> (reference)", and have no rank:
    the methods are numbered among themselves. The mean control change averages the controls
    in `mean_of` (default: all of them).

    The `published` entries of the scenario join as reported rows (`reported_rows`, flagged
    in `reported`): after the measured rows, in the ranking's order among themselves and
    without a rank, unless `rank_published`, which places and numbers them with the methods
    (a reported reference, the zero-shot model, is placed but never numbered).
    """
    population = context(runs, f)
    reported = reported_for(published, f.scenario)
    controls = control_names(population) if not population.empty else []
    controls += [c for c in reported_controls(reported) if c not in controls]
    cols = metric_columns(controls)
    parts = [pd.DataFrame([zero_shot_row(population, controls)])]
    # zero-shot runs are the reference row already (every run's session 0): no second row
    chosen = filter_runs(runs, f)
    chosen = chosen[chosen["strategy"] != ZERO_SHOT_STRATEGY] if not chosen.empty else chosen
    if not chosen.empty:
        chosen = with_mean_control_change(chosen, controls if mean_of is None else mean_of)
        stats = seed_stats(chosen, cols)
        stats["seeds_required"] = seed_counts(chosen)["seeds_required"]
        names = chosen.drop_duplicates("group").set_index("group")[["strategy", "preset"]]
        by_group = chosen.groupby("group")
        names["third_party"] = by_group["third_party"].any()
        names["verified"] = by_group["verified"].any()
        for key in SUBMITTER_KEYS:  # a bundle's declared fields, the first run's that has them
            names[key] = by_group[key].first()
        stats = names.join(stats, how="right").rename_axis("group").reset_index()
        parts.append(stats)
    if reported:
        parts.append(reported_rows(reported, cols))
    table = pd.concat(parts, ignore_index=True)
    table[["seeds", "runs", "seeds_required"]] = table[["seeds", "runs", "seeds_required"]] \
        .astype(int)
    # the reported flags only where there are reported rows: a board without them keeps its
    # columns (every other column is a declared metric or a fact of the row)
    flags = ("third_party", "verified", *(REPORTED_COLUMNS[:2] if reported else ()))
    for flag in flags:
        table[flag] = table.get(flag, pd.Series(False, index=table.index)) \
            .fillna(False).astype(bool)
    table["few_seeds"] = table["seeds"] < table["seeds_required"]
    by = next((c for c in cols if c.name == rank_by), cols[0])
    table = table.sort_values(by.name, ascending=not by.higher_is_better, na_position="last",
                              kind="stable")
    is_reported = table["reported"] if reported else pd.Series(False, index=table.index)
    if reported and not rank_published:  # measured rows first, then the reported ones
        table = pd.concat([table[~is_reported], table[is_reported]])
        is_reported = table["reported"]
    table, is_reported = table.reset_index(drop=True), is_reported.reset_index(drop=True)
    measured_reference = table["strategy"].isin(references) & ~is_reported
    reference = measured_reference | (table["group"] == ZERO_SHOT)
    if reported:
        reference |= is_reported & (table["reported_reference"] | (not rank_published))
    table.insert(0, "rank", (~reference).cumsum().where(~reference).astype("Int64"))
    renamed = measured_reference & (table["group"] != ZERO_SHOT)  # "reference" said already
    table.loc[renamed, "strategy"] = table.loc[renamed, "strategy"] + REFERENCE_SUFFIX
    return table


GOOD_RGB, BAD_RGB = (46, 160, 67), (214, 69, 65)
THIRD_PARTY_MARK = " †"  # after a strategy a plugin package provides
VERIFIED_MARK = " ✓"  # after a preset with a run reproduced elsewhere within tolerance
SUBMITTER_KEYS = ("submitter_name", "submitter_paper", "submitter_code")
REFERENCE_TINT = "background-color: rgba(128, 128, 128, 0.14)"
REPORTED_TINT = "background-color: rgba(66, 133, 244, 0.16)"  # a reported row's own cells


def _digits(c: Column) -> int:
    return c.metric.digits


def _interval(c: Column, half: float) -> float:
    """The interval shown: none for a metric seeds do not change (the trainable share)."""
    return half if c.metric.seed_interval else float("nan")


def _cell_text(mean: float, half: float, digits: int, best: bool) -> str:
    if pd.isna(mean):
        return ""
    text = f"{mean:.{digits}f}" + ("" if pd.isna(half) else f" ± {half:.{digits}f}")
    return text + (" ★" if best else "")


def _tint(share: float) -> str:
    """Red (worst) through white to green (best) for a share in [0, 1] of a column's range."""
    if pd.isna(share):
        return ""
    rgb, alpha = (GOOD_RGB, share - 0.5) if share >= 0.5 else (BAD_RGB, 0.5 - share)
    return f"background-color: rgba({rgb[0]}, {rgb[1]}, {rgb[2]}, {0.8 * alpha:.2f})"


def best_values(table: pd.DataFrame, cols: list[Column]) -> dict[str, float]:
    """The best value of each metric column among the ranked methods (reference rows never
    count), following the metric's direction."""
    methods = table[table["rank"].notna()]
    out = {}
    for c in cols:
        values = methods[c.name].dropna() if c.name in methods else pd.Series(dtype=float)
        if not values.empty:
            out[c.name] = values.max() if c.higher_is_better else values.min()
    return out


def styled(table: pd.DataFrame, cols: list[Column], shown: list[str] | None = None):
    """The table as shown (a pandas Styler; the numbers stay numbers, so clicking a header
    still sorts by value): each metric cell reads "mean ± 95% CI" (no interval with one seed)
    with ★ on the best method per column, methods tinted from red (worst) to green (best) by
    the column's direction, reference rows grey, and the seed count of a preset short of its
    scenario's seeds as "1 of 3 ⚠". A reported row reads "reported" in its seeds cell and is
    blue (its numbers tinted as the methods' only when it is ranked with them). Only the
    `shown` metric columns (default: all) get their text, as formatting costs a third of a
    millisecond per call."""
    best = best_values(table, cols)
    methods = table["rank"].notna()
    reported = table.get("reported", pd.Series(False, index=table.index))
    display = {c.name: [_cell_text(m, _interval(c, h), _digits(c), best.get(c.name) == m and r)
                        for m, h, r
                        in zip(table[c.name], table[c.name + " ±"], methods)]
               for c in cols if c.name in table and (shown is None or c.name in shown)}
    # reference rows: no rank, and "reference" in the preset column (the strategy column
    # stays narrow enough for 1600 px)
    display["strategy"] = [s.removesuffix(REFERENCE_SUFFIX) if not m else
                           s + (THIRD_PARTY_MARK if third else "") + (VERIFIED_MARK if ok else "")
                           for s, m, third, ok in
                           zip(table["strategy"].replace({ZERO_SHOT: "zero-shot"}), methods,
                               table["third_party"], table["verified"])]
    reference_of = table.get("reported_reference", reported)
    display["preset"] = [p + (", reference" if ref else "") if rep else
                         ", ".join(filter(None, ["reference", p])) if not m else p
                         for p, m, rep, ref in zip(table["preset"].fillna(""), methods, reported,
                                                   reference_of)]
    display["seeds"] = [REPORTED if rep else f"{n} of {k} ⚠" if few else str(n)
                        for n, k, few, rep in zip(table["seeds"], table["seeds_required"],
                                                  table["few_seeds"], reported)]

    def colour(column: pd.Series) -> list[str]:
        c = next((c for c in cols if c.name == column.name), None)
        if c is None:
            return [REPORTED_TINT if rep else REFERENCE_TINT if not m else ""
                    for m, rep in zip(methods, reported)]
        values = column.where(methods)
        low, high = values.min(), values.max()
        spread = (values - low) / (high - low) if high > low else values * 0 + 0.5
        share = spread if c.higher_is_better else 1 - spread
        return [_tint(v) if m else REPORTED_TINT if rep else REFERENCE_TINT
                for v, m, rep in zip(share, methods, reported)]

    styler = table.style.apply(colour, axis=0)
    for name, texts in display.items():
        rows_by_text: dict[str, list] = {}
        for row, text in zip(table.index, texts):
            rows_by_text.setdefault(text, []).append(row)
        # one call per distinct text: a cell's text depends on more than its own value
        for text, rows in rows_by_text.items():
            styler.format(lambda _v, text=text: text, subset=(rows, [name]))
    return styler


def export_csv(table: pd.DataFrame, controls: list[str]) -> bytes:
    """The table as CSV with headers that carry the declared label, unit (accuracies in %,
    changes in points) and direction."""
    out = table.drop(columns=["group"], errors="ignore").copy()
    renamed = {}
    for c in metric_columns(controls):
        unit, label = c.unit_text, c.label
        if c.name in out:
            renamed[c.name] = f"{label} ({unit}, {c.metric.better} is better)"
            renamed[c.name + " ±"] = f"{label} 95% CI half-width over seeds ({unit})"
    return out.rename(columns=renamed).to_csv(index=False, float_format="%.4f").encode()


def drawn_groups(table: pd.DataFrame, top: int, highlight: list[str]) -> list[str]:
    """The presets a plot draws: the first `top` methods of the ranked table, the highlighted
    ones and the reference bounds (so that 50 presets do not become an illegible pile)."""
    methods = table["rank"].notna()
    first = table.loc[methods, "group"].head(top).tolist()
    references = table.loc[~methods & (table["group"] != ZERO_SHOT), "group"].tolist()
    return list(dict.fromkeys([*first, *highlight, *references]))


def without_zero_shot(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs minus those of the zeroshot strategy: plots draw zero-shot as their dashed
    reference line, not as a preset of its own."""
    return runs[runs["strategy"] != ZERO_SHOT_STRATEGY] if not runs.empty else runs


def presets_side_by_side(table: pd.DataFrame, groups: list[str],
                         controls: list[str]) -> pd.DataFrame:
    """Leaderboard rows of `groups` side by side: one column per preset (named by strategy and
    preset), one row per metric as "mean ± 95% CI" in its unit, plus seeds and the zero-shot
    reference column."""
    cols = metric_columns(controls)
    rows = table.set_index("group")
    out = {}
    for group in [*groups, ZERO_SHOT]:
        if group not in rows.index:
            continue
        row = rows.loc[group]
        cells = {f"{c.header} ({c.unit_text})": _cell_text(
            row[c.name], _interval(c, row[c.name + " ±"]), _digits(c), False) for c in cols}
        seeds = f"{row['seeds']}" + (f" of {row['seeds_required']} ⚠" if row["few_seeds"]
                                     else "")
        declared = {label: row.get(key) or "" for label, key in
                    (("submitted by", "submitter_name"), ("paper", "submitter_paper"),
                     ("code", "submitter_code"))}
        out[group] = {"seeds": seeds, "verified": "yes" if row.get("verified") else "",
                      **declared, **cells}
    return pd.DataFrame(out)


def in_ranking_order(runs: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Runs ordered as their presets rank (then by seed), zero-shot runs last: a run picker
    opens on the best preset, not on whichever run came first."""
    place = {g: i for i, g in enumerate(table["group"])}
    key = runs["group"].map(place).fillna(len(place))
    return runs.assign(_place=key).sort_values(["_place", "seed"], kind="stable") \
        .drop(columns="_place")


def run_labels(runs: pd.DataFrame) -> dict[str, str]:
    """run id -> "strategy (preset) · seed 1 · 1a2b3c4d5e6f" (pickers and compare columns)."""
    return {i: f"{g} · seed {s} · {i[:12]}" for i, g, s in zip(runs["id"], runs["group"],
                                                                runs["seed"])}


def runs_list(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs behind presets: one line each with its headline numbers (the metrics declared
    HEADLINE that have one value per run, in their units)."""
    out = pd.DataFrame({
        "preset": runs["group"], "seed": runs["seed"], "run": runs["id"].str[:12],
        "created": runs["created_at"].dt.strftime("%Y-%m-%d %H:%M"),
        "code": ["clean" if c else "dirty" for c in runs["clean"]]})
    for metric, _ in shown_in(HEADLINE):
        if metric.per is None and metric.name in runs:
            out[f"{metric.short_for()} ({metric.unit})"] = runs[metric.name] * metric.scale
    out["run s"] = runs["total_time_s"]
    return out.sort_values(["preset", "seed"]).round(1)


def percent_keys() -> frozenset[str]:
    """Summary keys stored as fractions and shown in % or points: the declared metrics' with a
    scale of 100 (a control set's by the key under its name: final, change, ...)."""
    return frozenset(m.summary_key for m in METRICS.values()
                     if SUMMARY in m.shown and m.scale == 100.0)


def in_percent(summary: dict) -> dict:
    """A run summary with its accuracies (fractions) in % and changes in points, as every page
    shows them; counts, names and the trainable share stay as they are."""
    keys = percent_keys()

    def convert(key: str, value: object) -> object:
        if isinstance(value, dict):
            return {k: convert(k, v) for k, v in value.items()}
        if key in keys and isinstance(value, list):
            return [None if v is None else round(100 * v, 2) for v in value]
        if key in keys and isinstance(value, (int, float)) and not isinstance(value, bool):
            return 100 * value
        return value
    return {k: convert(k, v) for k, v in summary.items()}


def headline(run: dict) -> dict[str, str]:
    """The numbers a run is judged by (the metrics declared HEADLINE), as text for st.metric."""
    summary = run.get("summary") or {}
    return {metric.short_for(control): metric.text(stored_value(metric, summary, control))
            for metric, control in shown_in(HEADLINE, summary.get("controls") or {})}


def flatten(value: object, prefix: str = "") -> dict:
    """Nested dicts as dotted keys (for side-by-side config comparison)."""
    if isinstance(value, dict):
        out: dict = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def key_values(nested: dict) -> pd.DataFrame:
    """A nested dict as a two-column table (setting, value), instead of raw JSON."""
    flat = flatten(nested)
    return pd.DataFrame({"key": list(flat), "value": [_cell(v) for v in flat.values()]})


def compare_runs(runs: list[dict], labels: list[str] | None = None) -> pd.DataFrame:
    """Runs side by side: one column per run (named by `labels`, default the id's prefix), one
    row per config/summary/provenance key (accuracies in %, changes in points), and a
    `differs` flag so that what sets the runs apart can be shown first."""
    flat = []
    for run in runs:
        entry = {"strategy": run.get("strategy"), "seed": run.get("seed"),
                 "status": run.get("status"), "git_sha": run.get("git_sha"),
                 "git_dirty": run.get("git_dirty"), "total_time_s": run.get("total_time_s")}
        entry.update(flatten(run.get("config") or {}, "config"))
        entry.update(flatten(in_percent(run.get("summary") or {}), "summary"))
        flat.append(entry)
    keys = list(dict.fromkeys(k for e in flat for k in e))
    names = labels or [run["id"][:12] for run in runs]
    table = pd.DataFrame({name: [_cell(e.get(k)) for k in keys]
                          for name, e in zip(names, flat)}, index=keys)
    table.insert(0, "differs", [table.loc[k].nunique(dropna=False) > 1 for k in keys])
    return table.sort_values("differs", ascending=False, kind="stable")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
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


# ------------------------------------------------------------------ multi-dataset streams
# A multi-dataset stream (MTIL; Zheng et al., "Preventing Zero-Shot Transfer Degradation in
# Continual Learning of Vision-Language Models", ICCV 2023) learns T datasets one after another
# and evaluates every one after every step: its summary holds the matrix A[i][j] (row 0 =
# zero-shot) and, per dataset, Transfer / Avg / Last (`<metric>_by_dataset`), whose definitions
# are `clbench.metrics`'s. The functions below average them over seeds (per seed first) and lay
# them out as ZSCL's Table 1.
BY_DATASET = "_by_dataset"  # summary key of a Transfer / Avg / Last's list per dataset


def multi_dataset_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of multi-dataset streams that stored their matrix."""
    if runs.empty or "matrix" not in runs:
        return runs.iloc[0:0]
    keep = (runs["protocol"] == MULTI_DATASET) & runs["matrix"].map(bool)
    return runs[keep]


def seed_mean_cells(cells: pd.DataFrame, keys: list[str]) -> dict[tuple, float]:
    """Each cell's accuracy in %: `cells` (with `seed`, `accuracy` and the `keys` columns)
    averaged per seed first, then over seeds (a seed run twice counts once), keyed by `keys`."""
    per_seed = cells.groupby([*keys, "seed"])["accuracy"].mean()
    return (per_seed.groupby(keys).mean() * 100).to_dict()


def mtil_matrix(runs: pd.DataFrame) -> tuple[list[str], list[list[float | None]]]:
    """(datasets in training order, A[i][j] in %) over `runs` of one multi-dataset stream: rows
    i = 0 (zero-shot) .. T, per seed the runs averaged first, then over seeds (a seed run twice
    counts once); None where no run has the cell. Runs whose datasets differ from the first
    run's (another order) are left out."""
    runs = multi_dataset_runs(runs)
    if runs.empty:
        return [], []
    datasets = list(runs["datasets"].iloc[0])
    cells = [(seed, i, j, value) for seed, names, rows in
             zip(runs["seed"], runs["datasets"], runs["matrix"]) if list(names) == datasets
             for i, row in enumerate(rows) for j, value in enumerate(row) if value is not None]
    if not cells:
        return datasets, []
    frame = pd.DataFrame(cells, columns=["seed", "i", "j", "accuracy"])
    mean = seed_mean_cells(frame, ["i", "j"])
    steps = int(frame["i"].max())
    return datasets, [[mean.get((i, j)) for j in range(len(datasets))]
                      for i in range(steps + 1)]


def _seed_mean(values: pd.Series, seeds: pd.Series) -> float | None:
    per_seed = pd.to_numeric(values, errors="coerce").groupby(seeds.to_numpy()).mean()
    per_seed = per_seed.dropna()
    return float(per_seed.mean()) if not per_seed.empty else None


def mtil_scores(runs: pd.DataFrame, datasets: list[str]) -> dict[str, tuple[list, float | None]]:
    """Per board metric of a multi-dataset stream (`PROTOCOL_COLUMNS`): (its value per dataset,
    its mean over datasets), in %, mean over seeds of what the runs stored (per seed first)."""
    runs = multi_dataset_runs(runs)
    runs = runs[runs["datasets"].map(lambda names: list(names) == datasets)]
    out: dict[str, tuple[list, float | None]] = {}
    for name in PROTOCOL_COLUMNS[MULTI_DATASET]:
        lists = runs[name + BY_DATASET] if name + BY_DATASET in runs else pd.Series(dtype=object)
        per_dataset = []
        for j in range(len(datasets)):
            column = lists.map(lambda v, j=j: v[j] if isinstance(v, list) and j < len(v)
                               else None)
            value = _seed_mean(column, runs["seed"]) if not runs.empty else None
            per_dataset.append(None if value is None else 100 * value)
        mean = _seed_mean(runs[name], runs["seed"]) if name in runs and not runs.empty else None
        out[name] = (per_dataset, None if mean is None else 100 * mean)
    return out


def zero_shot_scores(matrix: list[list[float | None]]) -> dict[str, tuple[list, float | None]]:
    """The zero-shot model's Transfer / Avg / Last: a model that never trains has every row of
    its matrix equal to row 0, so they are the metrics' own on that matrix (Transfer none for
    the first dataset, its mean over datasets 2..T)."""
    if not matrix:
        return {}
    never_trained = [list(matrix[0])] * len(matrix)
    out = {}
    for name in PROTOCOL_COLUMNS[MULTI_DATASET]:
        per_dataset = MTIL_BY_DATASET[name](never_trained)
        out[name] = (per_dataset, mean_known(per_dataset))
    return out


def mtil_breakdown(datasets: list[str], rows: dict[str, dict[str, tuple[list, float | None]]],
                   reported: Iterable[Published] = ()) -> pd.DataFrame:
    """ZSCL's Table 1 for one stream: for each of Transfer, Avg and Last, a line per model
    (`rows`: label -> `mtil_scores`/`zero_shot_scores`), its value on each dataset and its
    mean (in %, one decimal); published entries of the scenario add a line with their mean
    only, labelled "<method> (reported, <backbone>)"."""
    reported = list(reported)
    lines = []
    for name in PROTOCOL_COLUMNS[MULTI_DATASET]:
        metric = METRICS.get(name)
        heading = metric.short_for() if metric is not None else name
        for label, scores in rows.items():
            per_dataset, mean = scores.get(name, ([None] * len(datasets), None))
            lines.append({"metric": heading, "model": label,
                          **dict(zip(datasets, per_dataset)), "mean": mean})
        for p in reported:
            if name in p.metrics:
                lines.append({"metric": heading, "model": f"{p.method} ({REPORTED}, "
                              f"{p.backbone})", "mean": p.metrics[name]})
    out = pd.DataFrame(lines, columns=["metric", "model", *datasets, "mean"])
    numbers = out.columns[2:]
    out[numbers] = out[numbers].apply(pd.to_numeric, errors="coerce").round(1)
    return out
