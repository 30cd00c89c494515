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
Each metric's direction is declared once (`METRICS`) and reused by tables, ranking and plots.
This module is pure Python (no torch): the leaderboard imports it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from statistics import fmean

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


@dataclass(frozen=True)
class MetricSpec:
    label: str
    higher_is_better: bool
    unit: str = "%"  # accuracies in %; differences of accuracies in percentage points
    definition: str = ""  # one sentence, for tooltips (the module docstring has the formulas)


POINTS = "points"


METRICS: dict[str, MetricSpec] = {
    "balanced": MetricSpec(
        "balanced score (target Δ + mean control Δ)", True, POINTS,
        "target change plus the mean change of the controls, both against zero-shot: "
        "improved the target without destroying what the model knew"),
    "final_accuracy": MetricSpec(
        "final target accuracy", True, definition="target accuracy over all its classes "
        "after the last session"),
    "target_gain": MetricSpec(
        "target change vs zero-shot", True, POINTS,
        "final target accuracy minus the zero-shot model's"),
    "average_incremental_accuracy": MetricSpec(
        "average incremental accuracy (Avg)", True, definition="mean over sessions of the "
        "target accuracy over all its classes after each session"),
    "transfer": MetricSpec(
        "transfer to classes not yet trained", True, definition="mean over sessions of the "
        "accuracy on the classes of later sessions (MTIL's Transfer)"),
    "average_accuracy": MetricSpec(
        "last-row mean over sessions", True, definition="mean over sessions j of the "
        "accuracy on session j's classes after the last session"),
    "plasticity": MetricSpec(
        "plasticity (own session's gain right after it)", True, POINTS,
        "mean over sessions of the accuracy on a session's classes right after it, minus "
        "zero-shot's on them"),
    "forgetting": MetricSpec(
        "forgetting", False, POINTS, "mean over all but the last session of the accuracy on "
        "a session's classes right after it minus after the last session"),
    "bwt": MetricSpec("backward transfer (BWT)", True, POINTS, "minus the forgetting"),
    "control_change": MetricSpec(
        "control change vs zero-shot", True, POINTS,
        "a control set's accuracy after the last session minus the zero-shot model's"),
    "trainable_percent": MetricSpec(
        "trainable parameters", False, "% of the vision encoder",
        "share of the vision encoder's parameters the strategy trains"),
    "time_per_session_s": MetricSpec(
        "train time per session", False, "s", "wall-clock training time per session on the "
        "machine the run used (see its provenance)"),
}


def _lookup(evaluations: Iterable[dict]) -> dict[tuple[int, str, str], float]:
    return {(e["after_session"], e["eval_set"], e["subset"]): e["accuracy"] for e in evaluations}


def accuracy_matrix(evaluations: Iterable[dict], eval_set: str, sessions: int):
    """A[i][j] for i, j in 1..T (None where not evaluated: j > i in runs stored before every
    session's classes were evaluated after every session)."""
    acc = _lookup(evaluations)
    return [[acc.get((i, eval_set, f"session:{j}")) for j in range(1, sessions + 1)]
            for i in range(1, sessions + 1)]


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


def summarize(evaluations: list[dict], target: str, controls: list[str], sessions: int) -> dict:
    acc = _lookup(evaluations)
    summary: dict = {"target": target, "sessions": sessions}
    final = acc.get((sessions, target, "all"))
    zero = acc.get((0, target, "all"))
    summary["final_accuracy"] = final
    summary["zero_shot_accuracy"] = zero
    summary["target_gain"] = final - zero if final is not None and zero is not None else None
    matrix = accuracy_matrix(evaluations, target, sessions)
    last_row = [a for a in matrix[-1] if a is not None] if matrix else []
    summary["average_accuracy"] = fmean(last_row) if last_row else None
    summary["average_incremental_accuracy"] = average_incremental_accuracy(
        evaluations, target, sessions)
    transfer = transfer_by_session(evaluations, target, sessions)
    summary["transfer_by_session"] = transfer
    known = [t for t in transfer if t is not None]
    summary["transfer"] = fmean(known) if known else None
    summary["plasticity"] = plasticity(evaluations, target, sessions)
    f = forgetting(matrix)
    summary["forgetting"] = f
    summary["bwt"] = -f if f is not None else None
    summary["controls"] = {}
    for name in controls:
        c_final, c_zero = acc.get((sessions, name, "all")), acc.get((0, name, "all"))
        summary["controls"][name] = {
            "final": c_final, "zero_shot": c_zero,
            "change": c_final - c_zero if c_final is not None and c_zero is not None else None}
    summary["balanced"] = balanced_score(
        summary["target_gain"], [c["change"] for c in summary["controls"].values()])
    return summary
