"""The field's metrics and the balanced score, against hand-computed matrices."""

from __future__ import annotations

import pytest

from clbench.metrics import (
    METRICS,
    average_incremental_accuracy,
    balanced_score,
    declaration_of,
    plasticity,
    summarize,
    summary_keys,
    transfer_by_session,
)


def rows(eval_set: str, table: dict[tuple[int, str], float]) -> list[dict]:
    return [{"after_session": i, "eval_set": eval_set, "subset": s, "accuracy": a, "n": 10}
            for (i, s), a in table.items()]


# 3 sessions; A[i][j] for i = 0..3 (0 = zero-shot), every j recorded; a_i the all-class accuracy
TARGET = {
    (0, "all"): 0.10, (0, "session:1"): 0.0, (0, "session:2"): 0.2, (0, "session:3"): 0.1,
    (1, "all"): 0.40, (1, "session:1"): 0.9, (1, "session:2"): 0.3, (1, "session:3"): 0.0,
    (2, "all"): 0.60, (2, "session:1"): 0.7, (2, "session:2"): 0.8, (2, "session:3"): 0.3,
    (3, "all"): 0.80, (3, "session:1"): 0.6, (3, "session:2"): 0.8, (3, "session:3"): 1.0,
}
CONTROLS = {("c1", 0): 0.9, ("c1", 3): 0.7, ("c2", 0): 0.8, ("c2", 3): 0.8}


def evaluations() -> list[dict]:
    out = rows("t", TARGET)
    out += [{"after_session": i, "eval_set": c, "subset": "all", "accuracy": a, "n": 10}
            for (c, i), a in CONTROLS.items()]
    return out


def test_average_incremental_accuracy_is_the_mean_over_sessions_1_to_T():
    # (0.4 + 0.6 + 0.8) / 3; the zero-shot 0.1 does not count
    assert average_incremental_accuracy(evaluations(), "t", 3) == pytest.approx(0.6)


def test_transfer_is_the_accuracy_on_classes_not_yet_trained():
    # after 0: mean(0.0, 0.2, 0.1) = 0.1; after 1: mean(0.3, 0.0) = 0.15; after 2: 0.3
    assert transfer_by_session(evaluations(), "t", 3) == [
        pytest.approx(0.1), pytest.approx(0.15), pytest.approx(0.3)]


def test_plasticity_is_the_diagonal_against_zero_shot():
    # (A11 - A01) + (A22 - A02) + (A33 - A03) = 0.9 + 0.6 + 0.9, over 3 sessions
    assert plasticity(evaluations(), "t", 3) == pytest.approx(0.8)
    no_zero_shot_subsets = [e for e in evaluations()
                            if not (e["after_session"] == 0 and e["subset"] != "all")]
    assert plasticity(no_zero_shot_subsets, "t", 3) is None


def test_summary_holds_every_metric():
    s = summarize(evaluations(), "t", ["c1", "c2"], 3)
    assert s["final_accuracy"] == pytest.approx(0.8)
    assert s["average_incremental_accuracy"] == pytest.approx(0.6)
    assert s["transfer"] == pytest.approx((0.1 + 0.15 + 0.3) / 3)
    assert s["plasticity"] == pytest.approx(0.8)
    assert s["average_accuracy"] == pytest.approx((0.6 + 0.8 + 1.0) / 3)  # last-row mean
    # forgetting: (A11 - A31 + A22 - A32) / 2 = (0.3 + 0.0) / 2
    assert s["forgetting"] == pytest.approx(0.15) and s["bwt"] == pytest.approx(-0.15)
    # balanced: target +0.7, controls -0.2 and 0.0 -> mean -0.1
    assert s["balanced"] == pytest.approx(0.6)


def test_transfer_of_runs_stored_before_every_cell_was_recorded_is_none():
    old = [e for e in evaluations() if not (e["subset"].startswith("session:")
                                           and int(e["subset"][8:]) > e["after_session"])]
    s = summarize(old, "t", ["c1"], 3)
    assert s["transfer"] is None and s["transfer_by_session"] == [None, None, None]
    assert s["forgetting"] == pytest.approx(0.15)  # the j <= i matrix is unchanged


def test_balanced_never_rewards_forgetting():
    big_gain_big_loss = balanced_score(0.30, [-0.40, -0.40])
    small_gain_no_loss = balanced_score(0.20, [-0.02])
    assert big_gain_big_loss == pytest.approx(-0.10)
    assert small_gain_no_loss == pytest.approx(0.18)
    assert big_gain_big_loss < small_gain_no_loss
    assert balanced_score(0.1, []) == pytest.approx(0.1)  # no controls: the target change
    assert balanced_score(None, [0.1]) is None
    assert balanced_score(0.1, [None, -0.1]) == pytest.approx(0.0)  # unknown controls skipped


def test_every_summary_metric_declares_a_direction():
    keys = summary_keys(summarize(evaluations(), "t", ["c1"], 3))
    assert [k for k in keys if declaration_of(k) is None] == []
    for key in ("balanced", "average_incremental_accuracy", "transfer", "final_accuracy",
                "control:c1:change"):
        assert declaration_of(key).higher_is_better
    assert METRICS["forgetting"].higher_is_better is False
    assert "last-row" in METRICS["average_accuracy"].label
