"""Derived metrics of a run, computed from its stored evaluations.

Definitions (accuracy matrix A[i][j]: accuracy after session i (0 = zero-shot) on the target
test samples of the classes of session j, recorded for every j, trained or not; a_i: the target
accuracy over all its classes after session i; T sessions):
- final accuracy: a_T, the target accuracy over all classes after session T (the paper's
  headline number);
- average incremental accuracy: mean_{i=1..T} a_i (what class-incremental papers report as
  "Avg", e.g. iCaRL); it rewards a method that is good early, not only at the end;
- transfer after session i: mean_{j>i} A[i][j], the accuracy on the classes not yet trained
  (MTIL's "Transfer", Zheng et al. 2023), for i = 0..T-1, and its mean over those sessions
  ("transfer" in the summary; None with one session). i = 0 is the zero-shot model;
- last-row mean: mean_j A[T][j] (`average_accuracy`, Lopez-Paz & Ranzato's "ACC"; kept for
  stored runs and the leaderboard, but with sessions of equal size it equals the final
  accuracy restricted to the trained classes, so the run summary does not print it);
- plasticity: mean_{j=1..T} A[j][j] - A[0][j], what a session's own classes gained right
  after it was trained, against zero-shot (the accuracy matrix's diagonal); a method that
  cannot learn the target scores about 0 whatever it keeps;
- forgetting: mean over j < T of A[j][j] - A[T][j], and backward transfer BWT = -forgetting;
  these agree with Avalanche's `forgetting_metrics(stream=True)` / `bwt_metrics(stream=True)`
  on the same run (tested);
- change on each eval set: accuracy after session T minus the zero-shot accuracy (session 0):
  the paper's question "did the update destroy what the model knew?";
- balanced score (`balanced`): target change + mean control change, in points; the one number
  for "improved the target without destroying what the model knew" (`balanced_score` says why).

A multi-dataset stream (MTIL, Zheng et al. ICCV 2023, "Preventing Zero-Shot Transfer
Degradation in Continual Learning of Vision-Language Models") has T datasets, one session each,
and its matrix is over datasets: A[i][j] = accuracy on dataset j's test set after session i (row
0 = zero-shot; `dataset_matrix`). As ZSCL's evaluation defines them, per dataset j (1-based):
- Transfer_j = mean_{i=1..j-1} A[i][j], the accuracy on dataset j after each step before it is
  trained (none for j = 1); Transfer = mean_{j=2..T} Transfer_j;
- Avg_j = mean_{i=1..T} A[i][j], the mean of column j over every step; Avg = mean_j Avg_j;
- Last_j = A[T][j], the final row; Last = mean_j Last_j.
The zero-shot row reads A[0][j] for all three (so its Transfer is the mean over j = 2..T and its
Avg and Last the mean over all j). Forgetting and plasticity read the same matrix (A[j][j] is
dataset j right after it was trained); the target/control metrics are None there (every dataset
is the target of its own session). Base-to-new (CoOp, Zhou et al. IJCV 2022): base = accuracy on
the base classes' test images among the base classes after training, new = the same on the new
classes, and their harmonic mean HM = 2 base new / (base + new).
Each metric is declared once (`declare(Metric(...))`, at the end of this module): name, label,
direction, unit, definition, how it is computed and where it is shown (`Metric.shown`). The
run summary (`summarize`), the run report, `clbench show`, the leaderboard's columns, tooltips,
CSV headers and headline numbers read `METRICS`; `undeclared` finds what a view shows without a
declaration. This module is pure Python (no torch, no pandas): the leaderboard imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from statistics import fmean
from typing import Any

# the `purpose` a run stored by `clbench tune` carries in its config and summary: scored on
# validation data, so never ranked as a result (the leaderboard leaves such runs out)
TUNING = "tuning"


# how many seeds a result needs when its scenario does not say (`seeds:` in the scenario YAML):
# the papers report means over 3 seeds; the leaderboard marks and hides presets run on fewer
DEFAULT_SEEDS = 3


# the `purpose` of a re-run by `clbench reproduce`: a check of another run, not a result
REPRODUCTION = "reproduction"


def is_tuning(summary: dict | None) -> bool:
    return (summary or {}).get("purpose") == TUNING


def check_purpose(summary: dict | None) -> str | None:
    """"tuning" or "reproduction" for a run that checks something rather than being a result
    of its own (the leaderboard counts such runs apart); None for a result."""
    purpose = (summary or {}).get("purpose")
    return purpose if purpose in (TUNING, REPRODUCTION) else None


PERCENT = "%"  # accuracies, stored as fractions
POINTS = "points"  # differences of accuracies (percentage points), stored as fractions

# Where a metric is shown (`Metric.shown`). Every view reads the declarations; none keeps a list
# of its own, so a declared metric shows up everywhere its `shown` names and nowhere else.
SUMMARY = "summary"  # stored in each run's summary: `clbench show --json`, the app's Runs page
REPORT = "report"  # a line of the run report (after `clbench run`, in `clbench show`)
LEADERBOARD = "leaderboard"  # a leaderboard column with its tooltip, the CSV, the Presets page
BOARD_DEFAULT = "board default"  # among the columns shown before the chooser is touched
HEADLINE = "headline"  # the app's headline numbers of a run and its Presets page's runs list
PLACES = (SUMMARY, REPORT, LEADERBOARD, BOARD_DEFAULT, HEADLINE)

CONTROL = "control"  # `Metric.per`: one value per control set (summary["controls"][set])
SESSION = "session"  # `Metric.per`: a list, one value per session (no column can hold it)

# keys of a run's summary that are facts of the run, not metrics (`undeclared` skips them)
RUN_FACTS = frozenset({"target", "sessions", "controls", "purpose", "evaluated_on",
                       "seeds_required", "checkpoint_cost", "reused", "protocol", "datasets",
                       "matrix"})

# protocols (a scenario's `protocol:`): the LoRSU paper's class-incremental sessions inside one
# target and its offline variant; MTIL's sessions of whole datasets (ZSCL, ICCV 2023); CoOp's
# base-to-new split of one dataset's classes (Zhou et al., IJCV 2022; the LLU paper's protocol).
# Declared here, the core, as the last two have metrics of their own.
FEW_SHOT, OFFLINE, MULTI_DATASET, BASE_TO_NEW = "few-shot", "offline", "multi-dataset", "base-to-new"
BASE, NEW = "base", "new"  # the eval sets <target>:base and <target>:new of base-to-new


class RunEvaluations:
    """What a metric is computed from: a run's evaluations (rows of after_session, eval_set,
    subset, accuracy; session 0 = zero-shot) and the roles of its eval sets."""

    def __init__(self, evaluations: Iterable[dict], target: str | None, controls: Iterable[str],
                 sessions: int, datasets: Iterable[str] = (), protocol: str | None = None):
        self.evaluations = list(evaluations)
        self.target, self.controls, self.sessions = target, list(controls), sessions
        self.datasets = list(datasets)  # a multi-dataset stream's, in training order
        self.protocol = protocol
        self.cells = _lookup(self.evaluations)

    def accuracy(self, after: int, eval_set: str | None = None,
                 subset: str = "all") -> float | None:
        """The accuracy after session `after` (None where not evaluated); the target's by
        default."""
        return self.cells.get((after, eval_set or self.target, subset))

    def change(self, eval_set: str | None = None) -> float | None:
        """Accuracy after the last session minus zero-shot (the target's by default)."""
        final, zero = self.accuracy(self.sessions, eval_set), self.accuracy(0, eval_set)
        return final - zero if final is not None and zero is not None else None

    @cached_property
    def matrix(self) -> list[list[float | None]]:
        """A[i][j] for i, j in 1..T: over the target's session classes, or over the datasets of
        a multi-dataset stream."""
        if self.datasets:
            return self.dataset_matrix[1:]
        return accuracy_matrix(self.evaluations, self.target, self.sessions)

    @cached_property
    def dataset_matrix(self) -> list[list[float | None]]:
        """A multi-dataset stream's A[i][j], rows i = 0 (zero-shot) .. T ([] otherwise)."""
        return dataset_matrix(self.evaluations, self.datasets, self.sessions)

    def base_to_new(self) -> tuple[float | None, float | None]:
        """(base, new) accuracy after training of a base-to-new run ((None, None) otherwise)."""
        if self.protocol != BASE_TO_NEW or not self.target:
            return None, None
        new = f"{self.target.rsplit(':', 1)[0]}:{NEW}"
        return self.accuracy(self.sessions), self.accuracy(self.sessions, new)


@dataclass(frozen=True, kw_only=True)
class Metric:
    """One metric, declared once: what it means, how it is computed and where it is shown.

    The run summary, the run report, `clbench show`, the leaderboard's columns, tooltips and
    CSV headers all read these fields, so adding a metric is one `declare(Metric(...))`."""

    name: str  # the summary key; "control:<part>" for one with a value per control set
    label: str  # full name (report, CSV header); "{control}" stands for a control set's name
    higher_is_better: bool
    unit: str  # PERCENT, POINTS, "s", ...
    definition: str  # one sentence (tooltips); the module docstring has the formulas
    # from a run's evaluations: compute(run) or, per control set, compute(run, control); None
    # when something else sets it, which `source` then names
    compute: Callable[..., Any] | None = None
    source: str = ""
    shown: frozenset[str] = frozenset()  # PLACES
    short: str | None = None  # the leaderboard header and headline name (default: label)
    per: str | None = None  # CONTROL or SESSION; None: one number per run
    scale: float = 100.0  # stored value -> shown unit (fractions -> % and points)
    digits: int = 1
    seed_interval: bool = True  # False: seeds cannot change it, no confidence interval shown
    # the zero-shot reference row's value: another metric's name (the zero-shot model's value
    # is stored there), a number (0.0 for a change against zero-shot), None: unknown
    at_zero_shot: str | float | None = None
    # recomputes it from a stored summary that lacks it (runs stored before it was declared)
    backfill: Callable[..., Any] | None = None

    def __post_init__(self):
        wrong = []
        if (self.compute is None) == (not self.source):
            wrong.append("give either compute or source (who sets it), not both")
        if set(self.shown) - set(PLACES):
            wrong.append(f"unknown places {sorted(set(self.shown) - set(PLACES))}")
        if self.compute is not None and SUMMARY not in self.shown:
            wrong.append("a computed metric is stored: add SUMMARY to shown")
        if {REPORT, HEADLINE} & self.shown and SUMMARY not in self.shown:
            wrong.append("the report and headline read the summary: add SUMMARY to shown")
        if BOARD_DEFAULT in self.shown and LEADERBOARD not in self.shown:
            wrong.append("a default column is a column: add LEADERBOARD to shown")
        if self.per == SESSION and {LEADERBOARD, HEADLINE} & self.shown:
            wrong.append("a list per session fits no column")
        if (self.per == CONTROL) != self.name.startswith("control:"):
            wrong.append("name a metric per control set control:<part>, and only those")
        if (self.per == CONTROL) != ("{control}" in self.label):
            wrong.append("a per-control label names its set as {control}, others do not")
        if ":" in self.label:
            wrong.append("no ':' in a label (the report prints 'label: value')")
        if wrong:
            raise ValueError(f"metric {self.name!r}: " + "; ".join(wrong))

    @property
    def summary_key(self) -> str:
        """Its key in the summary (under summary["controls"][<set>] for a per-control one)."""
        return self.name.split(":", 1)[1] if self.per == CONTROL else self.name

    def column(self, control: str | None = None) -> str:
        """Its name in a flat row (the leaderboard's runs frame): control:<set>:<part>."""
        return f"control:{control}:{self.summary_key}" if self.per == CONTROL else self.name

    def label_for(self, control: str | None = None) -> str:
        return self.label.format(control=control) if self.per == CONTROL else self.label

    def short_for(self, control: str | None = None) -> str:
        short = self.short or self.label
        return short.format(control=control) if self.per == CONTROL else short

    @property
    def better(self) -> str:
        return "higher" if self.higher_is_better else "lower"

    def tooltip(self, control: str | None = None) -> str:
        """Definition, unit and direction: a column's hover help."""
        definition = self.definition.format(control=control) if self.per == CONTROL \
            else self.definition
        return f"{definition} ({self.unit}; {self.better} is better)"

    def text(self, value: Any) -> str:
        """A stored value as shown: scaled, changes signed, with the unit ("–" if unknown)."""
        if isinstance(value, (list, tuple)):
            return ", ".join(self.text(v) for v in value)
        if value is None:
            return "–"
        sign = "+" if self.unit == POINTS else ""
        unit = self.unit if self.unit.startswith("%") else f" {self.unit}"
        return f"{self.scale * value:{sign}.{self.digits}f}{unit}"


# every declared metric by name, in display order (report lines, leaderboard columns)
METRICS: dict[str, Metric] = {}


def declare(metric: Metric) -> Metric:
    """Add a metric to METRICS (a name is declared once)."""
    if metric.name in METRICS:
        raise ValueError(f"metric {metric.name!r} is declared twice")
    METRICS[metric.name] = metric
    return metric


def _lookup(evaluations: Iterable[dict]) -> dict[tuple[int, str, str], float]:
    return {(e["after_session"], e["eval_set"], e["subset"]): e["accuracy"] for e in evaluations}


def accuracy_matrix(evaluations: Iterable[dict], eval_set: str, sessions: int):
    """A[i][j] for i, j in 1..T (None where not evaluated: j > i in runs stored before every
    session's classes were evaluated after every session)."""
    acc = _lookup(evaluations)
    return [[acc.get((i, eval_set, f"session:{j}")) for j in range(1, sessions + 1)]
            for i in range(1, sessions + 1)]


def dataset_matrix(evaluations: Iterable[dict], datasets: list[str],
                   sessions: int) -> list[list[float | None]]:
    """A[i][j]: the accuracy on dataset j's test set after session i, for i = 0..T (0 =
    zero-shot) and j over `datasets` (None where not evaluated)."""
    acc = _lookup(evaluations)
    return [[acc.get((i, name, "all")) for name in datasets] for i in range(sessions + 1)]


def mtil_transfer_by_dataset(rows: list[list[float | None]]) -> list[float | None]:
    """Transfer_j = mean_{i=1..j-1} A[i][j] (None for the first dataset), `rows` from row 0."""
    return [mean_known(rows[i][j] for i in range(1, j + 1)) if j else None
            for j in range(len(rows[0]) if rows else 0)]


def mtil_avg_by_dataset(rows: list[list[float | None]]) -> list[float | None]:
    """Avg_j = mean_{i=1..T} A[i][j]."""
    return [mean_known(row[j] for row in rows[1:]) for j in range(len(rows[0]) if rows else 0)]


def mtil_last_by_dataset(rows: list[list[float | None]]) -> list[float | None]:
    """Last_j = A[T][j]."""
    return list(rows[-1]) if len(rows) > 1 else []


# ZSCL's three MTIL metrics, each per dataset from a matrix's rows (row 0 the zero-shot row)
MTIL_BY_DATASET: dict[str, Callable[[list[list[float | None]]], list[float | None]]] = {
    "mtil_transfer": mtil_transfer_by_dataset, "mtil_avg": mtil_avg_by_dataset,
    "mtil_last": mtil_last_by_dataset}


def harmonic_mean(base: float | None, new: float | None) -> float | None:
    """2 base new / (base + new): CoOp's HM of base and new accuracy (0 when both are 0)."""
    if base is None or new is None:
        return None
    return 2 * base * new / (base + new) if base + new else 0.0


def forgetting(matrix: list[list[float | None]]) -> float | None:
    """mean_{j<T} A[j][j] - A[T][j]; None with a single session."""
    last = len(matrix) - 1
    drops = [matrix[j][j] - matrix[last][j] for j in range(last)
             if matrix[j][j] is not None and matrix[last][j] is not None]
    return fmean(drops) if drops else None


def plasticity(evaluations: Iterable[dict], eval_set: str, sessions: int) -> float | None:
    """mean_{j=1..T} A[j][j] - A[0][j] over the sessions whose two cells were recorded (None if
    none was: runs stored before session subsets were evaluated at zero-shot)."""
    acc = _lookup(evaluations)
    gains = [acc[(j, eval_set, f"session:{j}")] - acc[(0, eval_set, f"session:{j}")]
             for j in range(1, sessions + 1)
             if (j, eval_set, f"session:{j}") in acc and (0, eval_set, f"session:{j}") in acc]
    return fmean(gains) if gains else None


def ci95_halfwidth(std, n):
    """Half-width of the 95% confidence interval of a mean over n seeds: t(0.975, n-1) * std /
    sqrt(n), Student's t because a benchmark has 3 to 5 seeds, where the normal 1.96 would be
    too narrow (t = 4.30 with 3 seeds). NaN with fewer than two seeds. Scalars or arrays (numpy
    broadcasting, so pandas columns work)."""
    import numpy as np
    from scipy.stats import t

    n = np.asarray(n, dtype=float)
    std = np.asarray(std, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        dof = np.where(n >= 2, n - 1, np.nan)
        out = t.ppf(0.975, dof) * std / np.sqrt(n)
    return out if out.ndim else float(out)


def balanced_score(target_gain: float | None,
                   control_changes: Iterable[float | None]) -> float | None:
    """Target change plus the mean control change (both against zero-shot, same unit).

    Why this form: it is in points, so it reads like the two numbers it combines (0 = the
    zero-shot model; +10 = ten points better on balance); it is linear, so a point lost on the
    controls cancels exactly a point gained on the target and forgetting can never be traded
    for a larger gain (+30 target / -40 controls scores -10, below +20 / -2 at +18); and it
    needs no accuracy level, unlike a harmonic mean of final target accuracy and control
    retention, which is dominated by the target's (often tiny) zero-shot level and flattens
    differences between good methods. The controls count as one term (their mean), so adding a
    control set does not outweigh the target. Without controls it is the target change."""
    if target_gain is None:
        return None
    changes = [c for c in control_changes if c is not None]
    return target_gain + (fmean(changes) if changes else 0.0)


def average_incremental_accuracy(evaluations: Iterable[dict], eval_set: str,
                                 sessions: int) -> float | None:
    """mean_{i=1..T} of the all-class accuracy after session i (None if none was recorded)."""
    acc = _lookup(evaluations)
    values = [acc[(i, eval_set, "all")] for i in range(1, sessions + 1)
              if (i, eval_set, "all") in acc]
    return fmean(values) if values else None


def transfer_by_session(evaluations: Iterable[dict], eval_set: str,
                        sessions: int) -> list[float | None]:
    """For i = 0..T-1: mean_{j>i} A[i][j], the accuracy on the classes not yet trained after
    session i (None where those cells were not recorded, e.g. runs stored before every j was)."""
    acc = _lookup(evaluations)
    out: list[float | None] = []
    for i in range(sessions):
        cells = [acc[(i, eval_set, f"session:{j}")] for j in range(i + 1, sessions + 1)
                 if (i, eval_set, f"session:{j}") in acc]
        out.append(fmean(cells) if cells else None)
    return out


def mean_known(values: Iterable[float | None]) -> float | None:
    """The mean of the values that are known (None when none is)."""
    known = [v for v in values if v is not None]
    return fmean(known) if known else None


def _dataset_plasticity(run: RunEvaluations) -> float | None:
    """mean_j A[j][j] - A[0][j] over a multi-dataset stream's datasets."""
    rows = run.dataset_matrix
    return mean_known(None if rows[j + 1][j] is None or rows[0][j] is None
                       else rows[j + 1][j] - rows[0][j] for j in range(len(run.datasets)))


def _mtil(by_dataset: Callable, first: int = 0) -> Callable[[RunEvaluations], Any]:
    """The mean over datasets (from the `first`-th) of a per-dataset MTIL metric; None for a
    run that is not multi-dataset."""
    return lambda run: mean_known(by_dataset(run.dataset_matrix)[first:]) if run.datasets \
        else None


def _mtil_list(by_dataset: Callable) -> Callable[[RunEvaluations], Any]:
    return lambda run: by_dataset(run.dataset_matrix) if run.datasets else None


def _balanced_of_summary(summary: dict) -> float | None:
    """The balanced score from a summary stored before the score was (same definition)."""
    return balanced_score(summary.get("target_gain"), [
        c.get("change") for c in (summary.get("controls") or {}).values()])


# Display order: the question's numbers first (balanced, target, controls), then the field's.
declare(Metric(
    name="balanced", label="balanced score (target Δ + mean control Δ)", short="balanced",
    higher_is_better=True, unit=POINTS, definition="target change plus the mean change of the "
    "controls, both against zero-shot: improved the target without destroying what the model "
    "knew", compute=lambda run: balanced_score(run.change(), map(run.change, run.controls)),
    backfill=_balanced_of_summary, at_zero_shot=0.0,
    shown=frozenset({SUMMARY, REPORT, LEADERBOARD, BOARD_DEFAULT, HEADLINE})))
declare(Metric(
    name="target_gain", label="target change vs zero-shot", short="target Δ",
    higher_is_better=True, unit=POINTS, definition="final target accuracy minus the zero-shot "
    "model's", compute=lambda run: run.change(), at_zero_shot=0.0,
    shown=frozenset({SUMMARY, REPORT, LEADERBOARD, BOARD_DEFAULT, HEADLINE})))
declare(Metric(
    name="control_change", label="mean control change vs zero-shot", short="controls Δ",
    higher_is_better=True, unit=POINTS, definition="the mean over the chosen control sets of "
    "their accuracy after the last session minus the zero-shot model's",
    source="the leaderboard, per run over the controls it averages (tables."
    "with_mean_control_change)", at_zero_shot=0.0,
    shown=frozenset({LEADERBOARD, BOARD_DEFAULT})))
declare(Metric(
    name="zero_shot_accuracy", label="zero-shot target accuracy", higher_is_better=True,
    unit=PERCENT, definition="target accuracy over all its classes before any session (the "
    "leaderboard's zero-shot row)", compute=lambda run: run.accuracy(0),
    shown=frozenset({SUMMARY, REPORT})))
declare(Metric(
    name="final_accuracy", label="final target accuracy", short="target acc.",
    higher_is_better=True, unit=PERCENT, definition="target accuracy over all its classes after "
    "the last session", compute=lambda run: run.accuracy(run.sessions),
    at_zero_shot="zero_shot_accuracy",
    shown=frozenset({SUMMARY, REPORT, LEADERBOARD, HEADLINE})))
declare(Metric(
    name="control:zero_shot", per=CONTROL, label="{control} zero-shot accuracy",
    higher_is_better=True, unit=PERCENT, definition="{control}'s accuracy before any session",
    compute=lambda run, c: run.accuracy(0, c), shown=frozenset({SUMMARY, REPORT})))
declare(Metric(
    name="control:final", per=CONTROL, label="{control} accuracy", short="{control} acc.",
    higher_is_better=True, unit=PERCENT, definition="{control}'s accuracy after the last "
    "session", compute=lambda run, c: run.accuracy(run.sessions, c), at_zero_shot="control:zero_shot",
    shown=frozenset({SUMMARY, REPORT, LEADERBOARD})))
declare(Metric(
    name="control:change", per=CONTROL, label="{control} change vs zero-shot",
    short="{control} Δ", higher_is_better=True, unit=POINTS, definition="{control}'s accuracy "
    "after the last session minus the zero-shot model's", compute=lambda run, c: run.change(c),
    at_zero_shot=0.0, shown=frozenset({SUMMARY, REPORT, LEADERBOARD, HEADLINE})))
declare(Metric(
    name="average_incremental_accuracy", label="average incremental accuracy (Avg)",
    short="Avg", higher_is_better=True, unit=PERCENT, definition="mean over sessions of the "
    "target accuracy over all its classes after each session",
    compute=lambda run: average_incremental_accuracy(run.evaluations, run.target,
                                                     run.sessions),
    at_zero_shot="zero_shot_accuracy", shown=frozenset({SUMMARY, REPORT, LEADERBOARD})))
declare(Metric(
    name="plasticity", label="plasticity (own session's gain right after it)",
    short="plasticity", higher_is_better=True, unit=POINTS, definition="mean over sessions of "
    "the accuracy on a session's classes right after it, minus zero-shot's on them",
    compute=lambda run: _dataset_plasticity(run) if run.datasets else plasticity(
        run.evaluations, run.target, run.sessions), at_zero_shot=0.0,
    shown=frozenset({SUMMARY, REPORT, LEADERBOARD})))
declare(Metric(
    name="forgetting", label="forgetting", higher_is_better=False, unit=POINTS,
    definition="mean over all but the last session of the accuracy on a session's classes "
    "right after it minus after the last session", compute=lambda run: forgetting(run.matrix),
    at_zero_shot=0.0, shown=frozenset({SUMMARY, REPORT, LEADERBOARD})))
declare(Metric(
    name="bwt", label="backward transfer (BWT)", higher_is_better=True, unit=POINTS,
    definition="minus the forgetting (Avalanche's bwt_metrics)",
    compute=lambda run: None if (f := forgetting(run.matrix)) is None else -f,
    shown=frozenset({SUMMARY, REPORT})))
declare(Metric(
    name="transfer", label="transfer to classes not yet trained", short="transfer",
    higher_is_better=True, unit=PERCENT, definition="mean over sessions of the accuracy on the "
    "classes of later sessions (MTIL's Transfer)",
    compute=lambda run: mean_known(transfer_by_session(run.evaluations, run.target,
                                                        run.sessions)),
    shown=frozenset({SUMMARY, REPORT, LEADERBOARD})))
declare(Metric(
    name="transfer_by_session", per=SESSION, label="transfer after sessions 0 (zero-shot) to "
    "T-1", higher_is_better=True, unit=PERCENT, definition="after each session, the accuracy "
    "on the classes of later sessions",
    compute=lambda run: None if run.datasets else transfer_by_session(
        run.evaluations, run.target, run.sessions),
    shown=frozenset({SUMMARY, REPORT})))
declare(Metric(
    name="average_accuracy", label="last-row mean over sessions", higher_is_better=True,
    unit=PERCENT, definition="mean over sessions j of the accuracy on session j's classes "
    "after the last session (with sessions of equal size, the final accuracy again: kept for "
    "stored runs, not shown)",
    compute=lambda run: mean_known(run.matrix[-1]) if run.matrix else None,
    shown=frozenset({SUMMARY})))
declare(Metric(
    name="mtil_transfer", label="Transfer (MTIL)", short="Transfer", higher_is_better=True,
    unit=PERCENT, definition="multi-dataset streams: mean over datasets 2..T of the accuracy on a "
    "dataset after each step before it is trained (ZSCL's Transfer)",
    compute=_mtil(mtil_transfer_by_dataset, first=1), at_zero_shot="mtil_zero_shot_transfer",
    shown=frozenset({SUMMARY, REPORT, LEADERBOARD})))
declare(Metric(
    name="mtil_avg", label="Avg (MTIL)", short="MTIL Avg", higher_is_better=True, unit=PERCENT,
    definition="multi-dataset streams: mean over datasets of a dataset's accuracy averaged over "
    "every step (ZSCL's Avg)", compute=_mtil(mtil_avg_by_dataset),
    at_zero_shot="mtil_zero_shot", shown=frozenset({SUMMARY, REPORT, LEADERBOARD})))
declare(Metric(
    name="mtil_last", label="Last (MTIL)", short="Last", higher_is_better=True, unit=PERCENT,
    definition="multi-dataset streams: mean over datasets of the accuracy after the last step "
    "(ZSCL's Last)", compute=_mtil(mtil_last_by_dataset), at_zero_shot="mtil_zero_shot",
    shown=frozenset({SUMMARY, REPORT, LEADERBOARD})))
declare(Metric(
    name="mtil_zero_shot", label="zero-shot mean over datasets (MTIL)", higher_is_better=True,
    unit=PERCENT, definition="multi-dataset streams: the zero-shot model's accuracy, mean over "
    "datasets (its Avg and Last)",
    compute=lambda run: mean_known(run.dataset_matrix[0]) if run.datasets else None,
    shown=frozenset({SUMMARY, REPORT})))
declare(Metric(
    name="mtil_zero_shot_transfer", label="zero-shot mean over datasets 2..T (MTIL)",
    higher_is_better=True, unit=PERCENT, definition="multi-dataset streams: the zero-shot "
    "model's accuracy, mean over datasets 2..T (its Transfer)",
    compute=lambda run: mean_known(run.dataset_matrix[0][1:]) if run.datasets else None,
    shown=frozenset({SUMMARY, REPORT})))
declare(Metric(
    name="mtil_transfer_by_dataset", per=SESSION, label="Transfer per dataset (MTIL)",
    higher_is_better=True, unit=PERCENT, definition="multi-dataset streams: per dataset, its "
    "accuracy averaged over the steps before it is trained (none for the first)",
    compute=_mtil_list(mtil_transfer_by_dataset), shown=frozenset({SUMMARY})))
declare(Metric(
    name="mtil_avg_by_dataset", per=SESSION, label="Avg per dataset (MTIL)",
    higher_is_better=True, unit=PERCENT, definition="multi-dataset streams: per dataset, its "
    "accuracy averaged over every step", compute=_mtil_list(mtil_avg_by_dataset),
    shown=frozenset({SUMMARY})))
declare(Metric(
    name="mtil_last_by_dataset", per=SESSION, label="Last per dataset (MTIL)",
    higher_is_better=True, unit=PERCENT, definition="multi-dataset streams: per dataset, its "
    "accuracy after the last step", compute=_mtil_list(mtil_last_by_dataset),
    shown=frozenset({SUMMARY})))
declare(Metric(
    name="base_accuracy", label="base-class accuracy (base-to-new)", short="base",
    higher_is_better=True, unit=PERCENT, definition="base-to-new: accuracy on the base classes' "
    "test images among the base classes, after training", at_zero_shot="zero_shot_accuracy",
    compute=lambda run: run.base_to_new()[0], shown=frozenset({SUMMARY, REPORT, LEADERBOARD})))
declare(Metric(
    name="new_accuracy", label="new-class accuracy (base-to-new)", short="new",
    higher_is_better=True, unit=PERCENT, definition="base-to-new: accuracy on the new (never "
    "trained) classes' test images among the new classes, after training",
    compute=lambda run: run.base_to_new()[1], shown=frozenset({SUMMARY, REPORT, LEADERBOARD})))
declare(Metric(
    name="harmonic_mean", label="harmonic mean of base and new (HM)", short="HM",
    higher_is_better=True, unit=PERCENT, definition="base-to-new: 2 base new / (base + new), "
    "CoOp's HM", compute=lambda run: harmonic_mean(*run.base_to_new()),
    shown=frozenset({SUMMARY, REPORT, LEADERBOARD})))
declare(Metric(
    name="trainable_percent", label="trainable parameters", short="trainable %",
    higher_is_better=False, unit="% of the vision encoder", definition="share of the vision "
    "encoder's parameters the strategy trains (the most any session trained)",
    source="the runner (clbench.run.runner), from the sessions' trainable parameter counts",
    scale=1.0, digits=2, seed_interval=False, at_zero_shot=0.0,
    shown=frozenset({SUMMARY, REPORT, LEADERBOARD, BOARD_DEFAULT})))
declare(Metric(
    name="time_per_session_s", label="train time per session", short="train s/session",
    higher_is_better=False, unit="s", definition="wall-clock training time per session on the "
    "machine the run used (see its provenance)", source="the leaderboard, from the run's "
    "stored sessions (data.load)", scale=1.0, at_zero_shot=0.0,
    shown=frozenset({LEADERBOARD})))


def summarize(evaluations: list[dict], target: str | None, controls: list[str], sessions: int,
              *, datasets: Iterable[str] = (), protocol: str | None = None) -> dict:
    """A run's summary: every declared metric that has a `compute`, from its evaluations
    (per-control ones under summary["controls"][<set>]), with the target and session count; a
    multi-dataset stream's also holds its datasets and its whole matrix (row 0 = zero-shot)."""
    run = RunEvaluations(evaluations, target, controls, sessions, datasets, protocol)
    summary: dict = {"target": target, "sessions": sessions}
    if protocol:
        summary["protocol"] = protocol
    if run.datasets:
        summary["datasets"] = list(run.datasets)
        summary["matrix"] = {"datasets": list(run.datasets), "rows": run.dataset_matrix}
    for metric in METRICS.values():
        if metric.compute is None:
            continue
        if metric.per == CONTROL:
            per_set = summary.setdefault("controls", {name: {} for name in controls})
            for name in controls:
                per_set[name][metric.summary_key] = metric.compute(run, name)
        else:
            summary[metric.name] = metric.compute(run)
    summary.setdefault("controls", {name: {} for name in controls})
    return summary


def stored_value(metric: Metric, summary: dict, control: str | None = None) -> Any:
    """A metric's value in a stored summary (None if the run has none), backfilled for runs
    stored before it was."""
    if metric.per == CONTROL:
        value = ((summary.get("controls") or {}).get(control) or {}).get(metric.summary_key)
    else:
        value = summary.get(metric.name)
    if value is None and metric.backfill is not None:
        value = metric.backfill(summary, control) if metric.per == CONTROL \
            else metric.backfill(summary)
    return value


def shown_in(place: str, controls: Iterable[str] = ()) -> list[tuple[Metric, str | None]]:
    """(metric, control set or None) for every metric shown at `place`, in declaration order;
    the per-control ones once per control set, grouped by set where the first is declared."""
    metrics = [m for m in METRICS.values() if place in m.shown]
    per_control = [m for m in metrics if m.per == CONTROL]
    out: list[tuple[Metric, str | None]] = []
    for metric in metrics:
        if metric.per != CONTROL:
            out.append((metric, None))
        elif metric is per_control[0]:
            out += [(m, name) for name in controls for m in per_control]
    return out


def split_control_column(column: str) -> tuple[str, str] | None:
    """(set, part) of a per-control column control:<set>:<part>; the set may itself hold a
    colon (base-to-new's `<target>:new`). None for any other name."""
    if not column.startswith("control:"):
        return None
    control, sep, part = column[len("control:"):].rpartition(":")
    return (control, part) if sep and control and part else None


def declaration_of(shown: str, controls: Iterable[str] = ()) -> Metric | None:
    """The declaration behind a name a view shows: a summary key, a column (a control set's
    as control:<set>:<part>), or a label or short label (a control's with its set's name)."""
    if shown in METRICS and METRICS[shown].per != CONTROL:
        return METRICS[shown]
    parsed = split_control_column(shown)
    if parsed is not None:
        metric = METRICS.get(f"control:{parsed[1]}")
        return metric if metric is not None and metric.per == CONTROL else None
    names = list(controls)
    for metric in METRICS.values():
        for control in (names if metric.per == CONTROL else [None]):
            if shown in (metric.label_for(control), metric.short_for(control)):
                return metric
    return None


def undeclared(shown: Iterable[str], controls: Iterable[str] = ()) -> list[str]:
    """The names among `shown` that no declaration covers (what a view must not show)."""
    names = list(controls)
    return [s for s in shown if declaration_of(s, names) is None]


def summary_keys(summary: dict) -> list[str]:
    """The metric names a stored summary holds (a control set's as control:<set>:<part>),
    its facts (RUN_FACTS) left out."""
    keys = [k for k in summary if k not in RUN_FACTS]
    for name, parts in (summary.get("controls") or {}).items():
        keys += [f"control:{name}:{part}" for part in parts]
    return keys
