"""The checks the built-in benchmark must pass (docs/scenarios.md): with `fft` at its
tuned setting each session's own classes gain at least 15 points right after it (plasticity)
while at least one control drops by 5 or more (forgetting stays visible). The real check runs
the committed proxy checkpoint on the full 20-shot streams (slow); the fast test runs the same
path (`clbench run`, the stored summary) on a shortened stream and checks the numbers the slow
test reads against the stored accuracy matrix."""

from __future__ import annotations

from pathlib import Path

import pytest

from clbench.cli.main import main
from clbench.store import Store

TINY_STREAM = """\
name: proxy-tiny-checks
target: proxy
protocol: few-shot
shots: 3
sessions: {sizes: [2, 2], order: dataset}
eval_sets: [proxy-clean, proxy-generic]
training: {epochs: 1, batch_size: 4, lr: 1.0e-4}
"""


def run_stored(tmp_path: Path, scenario: str) -> dict:
    db = tmp_path / "checks.db"
    assert main(["run", "--strategy", "fft", "--scenario", scenario, "--db", str(db),
                 "--no-progress", "--quiet"]) == 0
    store = Store(f"sqlite:///{db}", create=False)
    return store.get_run(store.list_runs()[0]["id"])


def plasticity_and_worst_control(summary: dict) -> tuple[float, float]:
    return summary["plasticity"], min(c["change"] for c in summary["controls"].values())


def test_the_checked_numbers_come_from_the_stored_matrix(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_STREAM)
    run = run_stored(tmp_path, str(path))
    acc = {(e["after_session"], e["eval_set"], e["subset"]): e["accuracy"]
           for e in run["evaluations"]}
    diagonal = [acc[(j, "proxy", f"session:{j}")] - acc[(0, "proxy", f"session:{j}")]
                for j in (1, 2)]
    plasticity, worst = plasticity_and_worst_control(run["summary"])
    assert plasticity == pytest.approx(sum(diagonal) / 2)
    assert worst == pytest.approx(min(acc[(2, c, "all")] - acc[(0, c, "all")]
                                      for c in ("proxy-clean", "proxy-generic")))


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["proxy-20shot", "proxy-hand-20shot"])
def test_fft_at_its_tuned_setting_learns_every_session_and_forgets_visibly(scenario, tmp_path):
    """Measured (seed 0, 2 CPU cores): see docs/scenarios.md for the numbers."""
    run = run_stored(tmp_path, scenario)
    plasticity, worst = plasticity_and_worst_control(run["summary"])
    print(scenario, f"plasticity {100 * plasticity:+.1f}, worst control {100 * worst:+.1f}")
    assert plasticity >= 0.15
    assert worst <= -0.05
