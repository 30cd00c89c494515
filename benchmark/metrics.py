"""Derived metrics of a run, computed from its stored evaluations.

Definitions (accuracy matrix A[i][j]: accuracy after session i on the target test samples of
the classes of session j; T sessions):
- final accuracy: target accuracy over all classes after session T (the paper's headline number);
- average accuracy: mean_j A[T][j] (Lopez-Paz & Ranzato 2017, "ACC");
- forgetting: mean over j < T of A[j][j] - A[T][j], and backward transfer BWT = -forgetting;
  these agree with Avalanche's `forgetting_metrics(stream=True)` / `bwt_metrics(stream=True)`
  on the same run (tested);
- change on each eval set: accuracy after session T minus the zero-shot accuracy (session 0):
  the paper's question "did the update destroy what the model knew?".
Each metric's direction is declared once (`METRICS`) and reused by tables, ranking and plots.
This module is pure Python (no torch): the leaderboard imports it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from statistics import fmean


@dataclass(frozen=True)
class MetricSpec:
    label: str
    higher_is_better: bool
    unit: str = "%"


METRICS: dict[str, MetricSpec] = {
    "final_accuracy": MetricSpec("final target accuracy", True),
    "target_gain": MetricSpec("target change vs zero-shot", True),
    "average_accuracy": MetricSpec("average accuracy (ACC)", True),
    "forgetting": MetricSpec("forgetting", False),
    "bwt": MetricSpec("backward transfer (BWT)", True),
    "control_change": MetricSpec("control change vs zero-shot", True),
    "trainable_percent": MetricSpec("trainable parameters", False),
    "time_per_session_s": MetricSpec("train time per session", False, "s"),
}


def _lookup(evaluations: Iterable[dict]) -> dict[tuple[int, str, str], float]:
    return {(e["after_session"], e["eval_set"], e["subset"]): e["accuracy"] for e in evaluations}


def accuracy_matrix(evaluations: Iterable[dict], eval_set: str, sessions: int):
    """A[i][j] for i, j in 1..T (None where not evaluated, e.g. j > i)."""
    acc = _lookup(evaluations)
    return [[acc.get((i, eval_set, f"session:{j}")) for j in range(1, sessions + 1)]
            for i in range(1, sessions + 1)]


def forgetting(matrix: list[list[float | None]]) -> float | None:
    """mean_{j<T} A[j][j] - A[T][j]; None with a single session."""
    last = len(matrix) - 1
    drops = [matrix[j][j] - matrix[last][j] for j in range(last)
             if matrix[j][j] is not None and matrix[last][j] is not None]
    return fmean(drops) if drops else None


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
    f = forgetting(matrix)
    summary["forgetting"] = f
    summary["bwt"] = -f if f is not None else None
    summary["controls"] = {}
    for name in controls:
        c_final, c_zero = acc.get((sessions, name, "all")), acc.get((0, name, "all"))
        summary["controls"][name] = {
            "final": c_final, "zero_shot": c_zero,
            "change": c_final - c_zero if c_final is not None and c_zero is not None else None}
    return summary
