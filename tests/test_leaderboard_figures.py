"""Leaderboard figures: pure functions over the synthetic store (`leaderboard_seed`) or
hand-built frames. Seed spread is the 95% CI of the mean over seeds: alpha (lr=0.0001) has 3
seeds, final 61 ± std 1, so ci = t(0.975, 2) / sqrt(3) = 2.484."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest
from leaderboard_seed import seed_store

from clbench.leaderboard_app import figures, tables
from clbench.leaderboard_app.data import load, open_store

ALPHA, SINGLE = "alpha (lr=0.0001)", "alpha (lr=0.001)"  # 3 seeds, 1 seed
GROUPS = [ALPHA, SINGLE, "beta"]
CI_3 = 4.302652729911275 / 3 ** 0.5  # t(0.975, 2) * std 1 / sqrt(3)
ROLES = {"syn": "target", "ctrl-a": "control", "ctrl-b": "control"}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    path = tmp_path_factory.mktemp("lb") / "results.db"
    return path, seed_store(path)


@pytest.fixture(scope="module")
def data(seeded):
    store = open_store(str(seeded[0]))
    yield load(store)
    store.close()


@pytest.fixture(scope="module")
def runs(data):
    """The 4-shot runs, one-seed preset included (not `tables.filter_runs`: figures only)."""
    return data.runs[data.runs["scenario"] == "syn-4shot"]


def test_group_colors_are_stable_and_reference_is_black():
    assert figures.group_colors(["b", "a"]) == {"a": figures.PALETTE[0],
                                                "b": figures.PALETTE[1],
                                                tables.ZERO_SHOT: "#000000"}
    assert figures.group_colors(["a", tables.ZERO_SHOT])["a"] == figures.PALETTE[0]


def test_curve_data_mean_and_ci(runs, data):
    stats = figures.curve_data(runs, data.evals, "syn")
    alpha = stats[stats["group"] == ALPHA].set_index("after_session")
    assert alpha.loc[0, "mean"] == pytest.approx(11.0)
    assert alpha.loc[3, "mean"] == pytest.approx(61.0)
    assert alpha.loc[3, "std"] == pytest.approx(1.0) and alpha.loc[3, "seeds"] == 3
    assert alpha.loc[3, "ci"] == pytest.approx(CI_3)
    assert stats.loc[stats["group"] == SINGLE, "ci"].isna().all()


def test_forgetting_curves_small_multiples(runs, data):
    fig = figures.forgetting_curves(runs, data.evals, list(ROLES), ROLES)
    titles = [a.text for a in fig.layout.annotations]
    assert {"syn (target)", "ctrl-a (control)", "ctrl-b (control)"} <= set(titles)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert sorted({t.xaxis for t in lines}) == ["x", "x2", "x3"]  # side by side
    assert sorted(t.name for t in lines if t.showlegend) == GROUPS  # one entry per group
    assert all(t.legendgroup == t.name for t in lines)
    bands = [t for t in fig.data if t.fill == "toself"]
    assert bands and all(t.mode == "lines" and t.line.width == 0 for t in bands)
    assert SINGLE not in {t.legendgroup for t in bands}  # one seed: no interval
    band = next(t for t in bands if t.legendgroup == ALPHA and t.xaxis == "x")
    assert max(band.y) == pytest.approx(61.0 + CI_3)
    alpha = next(t for t in lines if t.name == ALPHA and t.xaxis == "x")
    assert "after session 3: 61.0% ± 2.5 (95% CI, 3 seeds)" in alpha.hovertext[-1]
    beta = next(t for t in lines if t.name == "beta" and t.xaxis == "x2")
    assert list(beta.y) == pytest.approx([80.0, 70.0, 60.0, 50.0])
    shapes = fig.layout.shapes
    assert [s.xref for s in shapes] == ["x domain", "x2 domain", "x3 domain"]
    assert all(s.line.dash == "dash" for s in shapes)
    stats = figures.curve_data(runs, data.evals, "syn")
    zero = stats.loc[stats["after_session"] == 0, "mean"].mean()
    assert shapes[0].y0 == pytest.approx(zero)
    assert f"zero-shot {zero:.1f}%" in titles
    assert fig.layout.legend.orientation == "h"
    assert fig.layout.xaxis2.title.text == "after session (0 = zero-shot)"


def test_highlight_greys_the_others_and_colors_are_kept(runs, data):
    fig = figures.forgetting_curves(runs, data.evals, ["syn"], highlight=["beta"],
                                    colors={"beta": "#123456"})
    lines = {t.name: t for t in fig.data if t.mode == "lines+markers"}
    assert lines["beta"].line.color == "#123456" and lines["beta"].line.width == 3
    for name in (ALPHA, SINGLE):
        assert lines[name].line.color == figures.MUTED and lines[name].line.width == 1
        assert lines[name].hovertext  # still hoverable
    assert [t.legendgroup for t in fig.data if t.fill == "toself"] == ["beta"]
    assert list(fig.data).index(lines["beta"]) == len(fig.data) - 1  # drawn on top


def test_session_bars(runs, data):
    fig = figures.session_bars(runs, data.evals, "syn")
    assert fig.layout.barmode == "group" and "95% CI" in fig.layout.title.text
    bars = {t.name: t for t in fig.data}
    assert sorted(bars) == GROUPS and all(len(t.x) == 4 for t in fig.data)
    assert bars[ALPHA].x[0] == "zero-shot" and bars[ALPHA].x[3] == "session 3"
    assert bars[ALPHA].error_y.array[3] == pytest.approx(CI_3)
    assert bars[SINGLE].error_y.visible is False  # one seed: no interval


def test_seed_mean_matrix_of_synthetic_runs(runs, data):
    alpha = runs[runs["group"] == ALPHA]
    matrix = figures.seed_mean_matrix(alpha, data.evals, "syn")
    assert len(matrix) == 4 and all(len(row) == 3 for row in matrix)
    assert matrix[0] == [None, None, None]  # the synthetic runs record no zero-shot subsets
    assert matrix[3][0] == pytest.approx(10 + 50 * (1 - 0.2 * 2 / 3))  # the module's formula
    assert matrix[1][0] == pytest.approx(60.0) and matrix[1][1] is None


def test_seed_mean_matrix_averages_per_seed_then_over_seeds():
    runs = pd.DataFrame({"id": ["r0", "r0-again", "r1"], "seed": [0, 0, 1]})
    rows = [("r0", 0, 0.1), ("r0-again", 0, 0.3), ("r1", 0, 0.5), ("r1", 1, 0.8)]
    evals = pd.DataFrame(
        [{"run_id": r, "after_session": i, "eval_set": "syn", "subset": "session:1",
          "accuracy": a, "n": 10} for r, i, a in rows]
        + [{"run_id": "r1", "after_session": 2, "eval_set": "syn", "subset": "all",
            "accuracy": 0.9, "n": 10},
           {"run_id": "r1", "after_session": 1, "eval_set": "other", "subset": "session:1",
            "accuracy": 0.0, "n": 10}])
    matrix = figures.seed_mean_matrix(runs, evals, "syn")
    # zero-shot row: seed 0 = (10 + 30) / 2, seed 1 = 50; the mean of runs would be 30
    assert matrix == [[pytest.approx(35.0), None], [pytest.approx(80.0), None], [None, None]]


def test_accuracy_heatmaps():
    matrices = {"alpha": [[35.0, 20.0], [80.0, None], [70.0, 60.0]], "beta": [[10.0]] * 3}
    fig = figures.accuracy_heatmaps(matrices, "syn", seeds={"alpha": 3})
    assert [t.type for t in fig.data] == ["heatmap", "heatmap"]
    assert {t.coloraxis for t in fig.data} == {"coloraxis"}  # one scale, one colour bar
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0, 100)
    heat = fig.data[0]
    assert list(heat.y) == ["zero-shot", "after S1", "after S2"] and list(heat.x) == ["S1", "S2"]
    assert heat.text[0][0] == "35.0" and heat.text[1][1] == ""
    assert fig.layout.yaxis.autorange == "reversed"
    assert fig.layout.yaxis.title.text == "evaluated after"
    assert fig.layout.xaxis.title.text == "classes of session"
    assert [a.text for a in fig.layout.annotations] == ["alpha (3 seeds)", "beta"]
    assert fig.layout.title.text == "syn: accuracy matrix (%), mean over seeds"


def test_pareto_front_uses_directions():
    points = pd.DataFrame({"control_change": [-10.0, -2.0, -20.0, -5.0],
                           "target_gain": [50.0, 20.0, 40.0, 10.0]})
    front = figures.pareto_front(points, "control_change", "target_gain", "control_change",
                                 "target_gain")
    assert front.tolist() == [True, True, False, False]
    # forgetting is lower-is-better: the smallest forgetting with the highest gain wins
    points = pd.DataFrame({"forgetting": [1.0, 5.0], "target_gain": [30.0, 30.0]})
    assert figures.pareto_front(points, "forgetting", "target_gain", "forgetting",
                                "target_gain").tolist() == [True, False]


def _table(rows: list[tuple]) -> pd.DataFrame:
    """A leaderboard as tables.leaderboard shapes it (ranking order, "X ±" = 95% CI)."""
    columns = ["group", "seeds", "target_gain", "target_gain ±", "control_change",
               "control_change ±", "trainable_percent"]
    table = pd.DataFrame(rows, columns=columns)
    table.insert(1, "strategy", table["group"].str.split(" ").str[0])
    reference = table["group"] == tables.ZERO_SHOT
    table.insert(0, "rank", (~reference).cumsum().where(~reference).astype("Int64"))
    return table


NAN = float("nan")
SMALL = _table([("a", 3, 50.0, 2.5, -10.0, 1.0, 1.0), ("b", 1, 20.0, NAN, -30.0, NAN, 50.0),
                (tables.ZERO_SHOT, 3, 0.0, 0.0, 0.0, 0.0, 0.0),
                ("c", 3, 10.0, 1.0, -40.0, 2.0, 10.0), ("d", 3, 5.0, 1.0, NAN, NAN, 1.0)])


def test_tradeoff_plot_points_errors_and_front():
    points = figures.tradeoff_data(SMALL).set_index("group")
    assert "d" not in points.index  # no control change: not a point
    assert points["pareto"].to_dict() == {"a": True, "b": False, tables.ZERO_SHOT: True,
                                          "c": False}
    fig = figures.tradeoff_plot(SMALL, highlight=["c"], labels=2, colors={"a": "#123456"})
    assert fig.data[0].name == "Pareto front" and fig.data[0].mode == "lines"  # drawn below
    dots = {t.name: t for t in fig.data[1:]}
    assert list(dots) == ["a", "b", tables.ZERO_SHOT, "c"]  # one trace per group
    for _, row in SMALL[SMALL["group"] != "d"].iterrows():
        dot = dots[row["group"]]
        for axis, column in (("error_x", "control_change ±"), ("error_y", "target_gain ±")):
            bars = dot[axis]
            if pd.isna(row[column]):
                assert bars.visible is False
            else:
                assert list(bars.array) == [row[column]] and bars.color == dot.marker.color
    assert dots["a"].marker.color == "#123456"  # the legend shows the point's own colour
    assert dots[tables.ZERO_SHOT].marker.symbol == "star"
    assert dots[tables.ZERO_SHOT].marker.color == "#000000"
    assert dots["a"].marker.line.width == 3 and dots["c"].marker.line.width == 1  # front ringed
    assert dots["b"].marker.size > dots["a"].marker.size  # 50% trainable vs 1%
    assert [a.text for a in fig.layout.annotations] == ["a", "b", "c"]  # 2 + highlighted
    assert dots["a"].opacity == 0.25 and dots["c"].opacity > 0.25  # others faded
    assert "± 2.5" in dots["a"].hovertext[0] and "3 seeds" in dots["a"].hovertext[0]
    assert fig.layout.yaxis.title.text == "target change vs zero-shot (points)"
    assert fig.layout.xaxis.zeroline and fig.layout.yaxis.zeroline
    html = figures.to_html(fig)
    assert b"<html>" in html[:100] and b"Pareto front" in html


def _boxes(fig) -> tuple[list[tuple], list[tuple]]:
    """Label and marker boxes in plot px (y up), by the assumed plot and label sizes."""
    (x0, x1), (y0, y1) = fig.layout.xaxis.range, fig.layout.yaxis.range
    w_px, h_px = figures.PLOT_PX

    def box(x, y, w, h, dx=0.0, dy=0.0):
        cx, cy = (x - x0) / (x1 - x0) * w_px + dx, (y - y0) / (y1 - y0) * h_px + dy
        return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    labels = [box(a.x, a.y, *figures.label_size(a.text), a.ax, -a.ay)
              for a in fig.layout.annotations]
    markers = [box(t.x[0], t.y[0], t.marker.size, t.marker.size) for t in fig.data[1:]]
    return labels, markers


def _overlap(a: tuple, b: tuple) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_tradeoff_labels_do_not_collide_on_a_crowded_board():
    rows = [(f"preset-{i:02d} (lr=0.001)", 3, 20 + (i * 7 % 13) * 0.5, 1.0,
             -5 - (i * 5 % 11) * 0.3, 0.5, 1.0) for i in range(50)]
    crowded = _table(rows)
    highlight = [rows[30][0], rows[45][0]]
    fig = figures.tradeoff_plot(crowded, highlight=highlight)
    texts = [a.text for a in fig.layout.annotations]
    assert texts == [r[0] for r in rows[:8]] + highlight
    labels, markers = _boxes(fig)
    assert not any(_overlap(a, b) for a, b in itertools.combinations(labels, 2))
    assert not any(_overlap(a, m) for a in labels for m in markers)
    w_px, h_px = figures.PLOT_PX
    assert all(min(b[:2]) >= 0 and b[2] <= w_px and b[3] <= h_px for b in labels)
    assert fig.layout.height > figures.tradeoff_plot(SMALL).layout.height  # legend rows
    assert fig.layout.legend.orientation == "h"
