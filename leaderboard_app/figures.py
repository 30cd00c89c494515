"""Plotly figures of the leaderboard, as pure functions of the loaded frames.

Accuracies are stored as fractions and drawn in %; changes against zero-shot are in points.
Seed spread is shown the same way on every figure: per seed the runs of a preset are averaged,
then the line/bar/point is the mean over seeds and the band/error bar the 95% confidence
interval of that mean (Student t, `clbench.metrics.ci95_halfwidth`; none with a single seed).
A preset keeps its colour on every figure when the app passes one `group_colors` mapping.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from clbench.leaderboard_app.tables import ZERO_SHOT, seed_mean_cells
from clbench.metrics import METRICS, ci95_halfwidth

# 48 distinct colours: a board of many presets should not repeat a colour
PALETTE = tuple(qualitative.Dark24 + qualitative.Light24)
REFERENCE_COLOR = "#000000"  # the zero-shot reference row: black, never a preset's colour
MUTED = "#c8c8c8"  # presets that are not highlighted
LEGEND_PX = 1200  # legend width assumed for the height estimate (a 1600 px page, margins)
LEGEND_ROW_PX = 22
# what the trade-off plot's label placement assumes about the drawn plot area (px)
PLOT_PX = (700, 500)
CHAR_PX = 7
LINE_PX = 16
CI_TEXT = "mean ± 95% CI over seeds"


def group_colors(groups: Iterable[str]) -> dict[str, str]:
    """A colour per group from its place among the sorted names, so it does not depend on
    which page or filter drew it; the zero-shot reference is black."""
    names = sorted({g for g in groups if g != ZERO_SHOT})
    colors = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(names)}
    colors[ZERO_SHOT] = REFERENCE_COLOR
    return colors


def _with_defaults(colors: dict[str, str] | None, groups: Iterable[str]) -> dict[str, str]:
    """The caller's colours, completed for groups it did not name."""
    return {**group_colors(groups), **(colors or {})}


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _legend_below(fig: go.Figure, names: list[str], plot_px: int, top_px: int = 80) -> None:
    """A horizontal legend under the plot: the bottom margin (and the figure) grows by a row
    of legend, so the plot keeps its height and no entry is cut. Plotly lays the entries out
    in columns as wide as the longest name (~4 a row for 40-character presets)."""
    width = CHAR_PX * max((len(n) for n in names), default=0) + 50
    rows = max(1, math.ceil(len(names) / max(1, LEGEND_PX // width)))
    bottom = 70 + LEGEND_ROW_PX * rows
    fig.update_layout(
        height=top_px + plot_px + bottom, margin={"t": top_px, "b": bottom},
        legend={"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom",
                "x": 0, "xanchor": "left", "itemsizing": "constant"})


def _seeds_text(ci: float, seeds: int) -> str:
    if pd.isna(ci):
        return f"({seeds} seed{'' if seeds == 1 else 's'})"
    return f"± {ci:.1f} (95% CI, {seeds} seeds)"


def curve_data(runs: pd.DataFrame, evals: pd.DataFrame, eval_set: str) -> pd.DataFrame:
    """Per group and session (0 = zero-shot), the `all` accuracy on `eval_set` over seeds:
    columns group, after_session, mean, std, ci (95% half-width), seeds (in %)."""
    columns = ["group", "after_session", "mean", "std", "ci", "seeds"]
    if runs.empty or evals.empty:
        return pd.DataFrame(columns=columns)
    rows = evals[(evals["eval_set"] == eval_set) & (evals["subset"] == "all")
                 & evals["run_id"].isin(runs["id"])]
    rows = rows.merge(runs[["id", "group", "seed"]], left_on="run_id", right_on="id")
    per_seed = rows.groupby(["group", "after_session", "seed"])["accuracy"].mean() * 100
    stats = per_seed.groupby(["group", "after_session"]).agg(["mean", "std", "count"])
    stats = stats.rename(columns={"count": "seeds"}).reset_index()
    stats["ci"] = ci95_halfwidth(stats["std"], stats["seeds"])
    return stats[columns]


def _band(g: pd.DataFrame, group: str, color: str) -> go.Scatter | None:
    """mean ± ci as a filled outline without markers; None with one seed (no interval)."""
    if g["ci"].isna().all():
        return None
    x, ci = g["after_session"].tolist(), g["ci"].fillna(0.0)
    return go.Scatter(
        x=x + x[::-1], y=(g["mean"] + ci).tolist() + (g["mean"] - ci).tolist()[::-1],
        mode="lines", fill="toself", fillcolor=_rgba(color, 0.15), line={"width": 0},
        hoverinfo="skip", showlegend=False, legendgroup=group, name=f"{group} band")


def _curve(g: pd.DataFrame, group: str, color: str, width: int, legend: bool) -> go.Scatter:
    hover = [f"{group}<br>after session {s}: {m:.1f}% {_seeds_text(c, n)}"
             for s, m, c, n in zip(g["after_session"], g["mean"], g["ci"], g["seeds"])]
    return go.Scatter(
        x=g["after_session"], y=g["mean"], mode="lines+markers", name=group, legendgroup=group,
        showlegend=legend, line={"color": color, "width": width},
        marker={"color": color, "size": 4 + width}, hovertext=hover, hoverinfo="text")


def forgetting_curves(runs: pd.DataFrame, evals: pd.DataFrame, eval_sets: list[str],
                      roles: dict[str, str] | None = None, highlight: Iterable[str] = (),
                      colors: dict[str, str] | None = None) -> go.Figure:
    """Accuracy after each session, one panel per eval set side by side (target and controls
    read together), a line and a CI band per preset, and a dashed zero-shot line per panel.
    With `highlight`, the other presets are thin grey lines, so a few stand out among many."""
    roles, highlight = roles or {}, set(highlight)
    panels = {s: curve_data(runs, evals, s) for s in eval_sets}
    groups = sorted({g for d in panels.values() for g in d["group"]})
    colors = _with_defaults(colors, groups)
    titles = [f"{s} ({roles[s]})" if roles.get(s) else s for s in eval_sets]
    fig = make_subplots(rows=1, cols=max(1, len(eval_sets)), shared_yaxes=True,
                        subplot_titles=titles or None, horizontal_spacing=0.04)
    in_legend: set[str] = set()
    for col, data in enumerate(panels.values(), start=1):
        # grey ones first, so the highlighted lines are drawn on top
        for group in sorted(groups, key=lambda g: (not highlight or g in highlight, g)):
            g = data[data["group"] == group].sort_values("after_session")
            if g.empty:
                continue
            strong = not highlight or group in highlight
            band = _band(g, group, colors[group]) if strong else None
            if band is not None:
                fig.add_trace(band, row=1, col=col)
            fig.add_trace(_curve(g, group, colors[group] if strong else MUTED,
                                 3 if highlight and strong else 2 if strong else 1,
                                 group not in in_legend), row=1, col=col)
            in_legend.add(group)
        _zero_shot_line(fig, data, col)
    fig.update_xaxes(title_text="after session (0 = zero-shot)", dtick=1)
    fig.update_yaxes(title_text="accuracy %", row=1, col=1)
    fig.update_layout(title=f"Accuracy after each session ({CI_TEXT})", legend_title="strategy",
                      template="plotly_white")
    _legend_below(fig, groups, plot_px=320)
    return fig


def _zero_shot_line(fig: go.Figure, data: pd.DataFrame, col: int) -> None:
    """Dashed line at the mean of the session-0 means of the presets on this panel."""
    zero = data.loc[data["after_session"] == 0, "mean"]
    if zero.empty:
        return
    level = float(zero.mean())
    fig.add_hline(y=level, row=1, col=col, line={"dash": "dash", "color": "#555", "width": 1},
                  annotation_text=f"zero-shot {level:.1f}%", annotation_position="bottom right")


def _session_label(session: int) -> str:
    return "zero-shot" if session == 0 else f"session {session}"


def session_bars(runs: pd.DataFrame, evals: pd.DataFrame, eval_set: str,
                 colors: dict[str, str] | None = None) -> go.Figure:
    """Grouped bars: for each session, the presets side by side, error bars the 95% CI."""
    data = curve_data(runs, evals, eval_set)
    groups = sorted(data["group"].unique().tolist())
    colors = _with_defaults(colors, groups)
    fig = go.Figure()
    for group in groups:
        g = data[data["group"] == group].sort_values("after_session")
        fig.add_trace(go.Bar(
            x=[_session_label(s) for s in g["after_session"]], y=g["mean"], name=group,
            marker_color=colors[group],
            error_y={"type": "data", "visible": bool(g["ci"].notna().any()),
                     "array": [None if pd.isna(c) else c for c in g["ci"]]},
            hovertext=[f"{group}<br>{_session_label(s)}: {m:.1f}% {_seeds_text(c, n)}"
                       for s, m, c, n in zip(g["after_session"], g["mean"], g["ci"],
                                             g["seeds"])],
            hoverinfo="text"))
    order = [_session_label(s) for s in sorted(data["after_session"].unique())]
    fig.update_layout(barmode="group", title=f"{eval_set}: accuracy after each session "
                                             f"({CI_TEXT})",
                      xaxis={"categoryorder": "array", "categoryarray": order},
                      yaxis_title="accuracy %", legend_title="strategy", template="plotly_white")
    _legend_below(fig, groups, plot_px=360)
    return fig


def seed_mean_matrix(runs: pd.DataFrame, evals: pd.DataFrame,
                     eval_set: str) -> list[list[float | None]]:
    """A[i][j] in %, i = 0..T (0 = zero-shot), j = 1..T: accuracy on the classes of session j
    after session i, averaged per seed first, then over seeds (a seed run twice counts once);
    None where no run recorded the cell."""
    mine = evals[evals["run_id"].isin(runs["id"])]
    if mine.empty:
        return []
    sessions = int(mine["after_session"].max())
    cells = mine[(mine["eval_set"] == eval_set) & mine["subset"].str.startswith("session:")]
    cells = cells.merge(runs[["id", "seed"]], left_on="run_id", right_on="id")
    cells = cells.assign(j=cells["subset"].str.removeprefix("session:").astype(int))
    mean = seed_mean_cells(cells, ["after_session", "j"])
    return [[mean.get((i, j)) for j in range(1, sessions + 1)] for i in range(sessions + 1)]


def accuracy_heatmaps(matrices: dict[str, list[list[float | None]]], eval_set: str,
                      seeds: dict[str, int] | None = None) -> go.Figure:
    """Seed-mean accuracy matrices side by side on one 0..100 % colour scale, so presets
    compare cell by cell; zero-shot on top, then one row per session trained."""
    seeds = seeds or {}
    names = list(matrices)
    titles = [f"{n} ({seeds[n]} seed{'' if seeds[n] == 1 else 's'})" if n in seeds else n
              for n in names]
    fig = make_subplots(rows=1, cols=max(1, len(names)), shared_yaxes=True,
                        subplot_titles=titles or None, horizontal_spacing=0.03)
    for col, name in enumerate(names, start=1):
        z = [[None if v is None else float(v) for v in row] for row in matrices[name]]
        fig.add_trace(go.Heatmap(
            z=z, text=[["" if v is None else f"{v:.1f}" for v in row] for row in z],
            texttemplate="%{text}", coloraxis="coloraxis", name=name,
            x=[f"S{j}" for j in range(1, len(z[0]) + 1)] if z else [],
            y=["zero-shot"] + [f"after S{i}" for i in range(1, len(z))] if z else [],
            hovertemplate=f"{name}<br>%{{y}}, classes of %{{x}}: %{{z:.1f}}%<extra></extra>"),
            row=1, col=col)
    fig.update_xaxes(title_text="classes of session")
    fig.update_yaxes(autorange="reversed")
    fig.update_yaxes(title_text="evaluated after", row=1, col=1)
    rows = max((len(m) for m in matrices.values()), default=1)
    fig.update_layout(title=f"{eval_set}: accuracy matrix (%), mean over seeds",
                      height=180 + 45 * rows,
                      coloraxis={"colorscale": "Viridis", "cmin": 0, "cmax": 100,
                                 "colorbar": {"title": {"text": "%"}, "ticksuffix": "%"}},
                      template="plotly_white")
    return fig


def dataset_heatmap(datasets: list[str], matrix: list[list[float | None]], name: str,
                    seeds: int | None = None) -> go.Figure:
    """A multi-dataset stream's accuracy matrix (%), as ZSCL lays it out (Zheng et al., ICCV
    2023): a row per step, the zero-shot row on top, a column per dataset in training order,
    on a 0..100 % colour scale. Each dataset's cell right after its own step is outlined:
    above it are the steps before it was trained (its Transfer), below it what was kept."""
    z = [[None if v is None else float(v) for v in row] for row in matrix]
    steps = ["zero-shot"] + [f"after {datasets[i - 1] if i <= len(datasets) else i}"
                             for i in range(1, len(z))]
    fig = go.Figure(go.Heatmap(
        z=z, x=datasets, y=steps, coloraxis="coloraxis", name=name,
        text=[["" if v is None else f"{v:.1f}" for v in row] for row in z],
        texttemplate="%{text}",
        hovertemplate=f"{name}<br>%{{y}}, accuracy on %{{x}}: %{{z:.1f}}%<extra></extra>"))
    for j in range(min(len(datasets), len(z) - 1)):  # the diagonal: dataset j after step j
        fig.add_shape(type="rect", x0=j - 0.5, x1=j + 0.5, y0=j + 0.5, y1=j + 1.5,
                      line={"color": "#ffffff", "width": 2})
    title = f"{name}: accuracy after each step (%)" + (
        f", mean over {seeds} seed{'' if seeds == 1 else 's'}" if seeds else "")
    fig.update_yaxes(autorange="reversed", title_text="evaluated")
    fig.update_xaxes(title_text="dataset (training order)", side="top")
    fig.update_layout(title=title, height=160 + 38 * len(z), template="plotly_white",
                      coloraxis={"colorscale": "Viridis", "cmin": 0, "cmax": 100,
                                 "colorbar": {"title": {"text": "%"}, "ticksuffix": "%"}})
    return fig


def pareto_front(points: pd.DataFrame, x: str, y: str, x_metric: str, y_metric: str) -> pd.Series:
    """Whether each point is on the Pareto front: no other point is at least as good on both
    axes and better on one, "good" following each metric's declared direction (METRICS)."""
    sx = 1 if METRICS[x_metric].higher_is_better else -1
    sy = 1 if METRICS[y_metric].higher_is_better else -1
    vx, vy = points[x].to_numpy() * sx, points[y].to_numpy() * sy
    front = []
    for i in range(len(points)):
        dominated = ((vx >= vx[i]) & (vy >= vy[i]) & ((vx > vx[i]) | (vy > vy[i]))).any()
        front.append(not dominated)
    return pd.Series(front, index=points.index)


TRADEOFF_COLUMNS = ["group", "seeds", "target_gain", "target_gain ±", "control_change",
                    "control_change ±", "trainable_percent"]


def tradeoff_data(table: pd.DataFrame) -> pd.DataFrame:
    """Leaderboard rows (in table order) that have both a target gain and a control change,
    with their CIs and whether they are on the Pareto front."""
    out = table.reindex(columns=TRADEOFF_COLUMNS).dropna(subset=["target_gain",
                                                                 "control_change"])
    out = out.reset_index(drop=True)
    out["pareto"] = pareto_front(out, "control_change", "target_gain", "control_change",
                                 "target_gain") if not out.empty else pd.Series(dtype=bool)
    return out


def _marker_px(trainable_percent: float) -> float:
    """Marker diameter: area grows with the trainable share (a full fine-tune is largest)."""
    share = 0.0 if pd.isna(trainable_percent) else trainable_percent / 100
    return 10 + 40 * share ** 0.5


def _axis_range(values: pd.Series, spread: pd.Series) -> list[float]:
    """Data extent with the error bars, padded by 10% (set on the axis, so that the label
    placement knows the scale); the zero-shot row puts 0 in it."""
    if values.empty:
        return [-1.0, 1.0]
    lo = float((values - spread.fillna(0)).min())
    hi = float((values + spread.fillna(0)).max())
    pad = max(hi - lo, 1.0) * 0.1
    return [lo - pad, hi + pad]


def _to_px(x: float, y: float, xr: list[float], yr: list[float]) -> tuple[float, float]:
    """Data to plot-area pixels (y up) under the assumed PLOT_PX size."""
    return ((x - xr[0]) / (xr[1] - xr[0]) * PLOT_PX[0],
            (y - yr[0]) / (yr[1] - yr[0]) * PLOT_PX[1])


def _overlaps(a: tuple, b: tuple) -> bool:
    """Boxes (x0, y0, x1, y1) that share area."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _box(cx: float, cy: float, w: float, h: float) -> tuple:
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def label_size(text: str) -> tuple[float, float]:
    """The assumed size of a label in px (width, height)."""
    return CHAR_PX * len(text) + 6, LINE_PX


def _offsets(r: float, w: float, h: float):
    """Candidate label centres relative to the point (px, y up): above, below, right, left,
    further above/below, then rings further out in eight directions."""
    near_y, near_x = r + 3 + h / 2, r + 3 + w / 2
    yield from [(0, near_y), (0, -near_y), (near_x, 0), (-near_x, 0),
                (0, near_y + 1.5 * h), (0, -near_y - 1.5 * h)]
    for k in range(2, 12):
        dy, dx = near_y + 1.5 * h * k, near_x + 0.5 * w * (k - 1)
        yield from [(0, dy), (0, -dy), (dx, 0), (-dx, 0), (dx, dy), (-dx, dy), (dx, -dy),
                    (-dx, -dy)]


def _place_labels(data: pd.DataFrame, chosen: list[int], xr: list[float],
                  yr: list[float]) -> dict[int, tuple[float, float]]:
    """Greedy, in table order: each label takes the first offset whose box stays in the plot
    and overlaps no earlier label and no marker (else the first offset). px offsets, y up."""
    points = [(*_to_px(x, y, xr, yr), _marker_px(t)) for x, y, t in
              zip(data["control_change"], data["target_gain"], data["trainable_percent"])]
    taken = [_box(px, py, size, size) for px, py, size in points]
    inside = (0, 0, *PLOT_PX)
    placed = {}
    for i in chosen:
        px, py, size = points[i]
        w, h = label_size(str(data["group"].iloc[i]))
        options = list(_offsets(size / 2, w, h))
        fits = (o for o in options if _fits(_box(px + o[0], py + o[1], w, h), taken, inside))
        dx, dy = next(fits, options[0])
        taken.append(_box(px + dx, py + dy, w, h))
        placed[i] = (dx, dy)
    return placed


def _fits(box: tuple, taken: list[tuple], inside: tuple) -> bool:
    within = inside[0] <= box[0] and box[2] <= inside[2] and inside[1] <= box[1] \
        and box[3] <= inside[3]
    return within and not any(_overlaps(box, t) for t in taken)


def _error(value: float) -> dict:
    if pd.isna(value):
        return {"visible": False}
    return {"type": "data", "array": [float(value)], "visible": True, "thickness": 1.5}


def _axis_title(name: str) -> str:
    """A metric's label and unit, from its declaration."""
    return f"{METRICS[name].label} ({METRICS[name].unit})"


def _tradeoff_hover(row: pd.Series) -> str:
    def ci(column: str) -> str:
        v = row[column + " ±"]
        return "" if pd.isna(v) else f" ± {v:.1f}"
    gain, change, trainable = (METRICS[n] for n in ("target_gain", "control_change",
                                                    "trainable_percent"))
    return (f"{row['group']}<br>{gain.label} {row['target_gain']:+.1f}{ci('target_gain')} "
            f"{gain.unit}<br>{change.label} {row['control_change']:+.1f}"
            f"{ci('control_change')} {change.unit} (95% CI)<br>{trainable.label} "
            f"{row['trainable_percent']:.{trainable.digits}f}{trainable.unit}"
            f"<br>{_count(row['seeds'])} seeds")


def _count(value: object) -> str:
    return "?" if pd.isna(value) else str(int(value))


def _point(row: pd.Series, color: str, faded: bool) -> go.Scatter:
    reference = row["group"] == ZERO_SHOT
    ring = {"width": 3, "color": "#222"} if row["pareto"] else {"width": 1, "color": "white"}
    return go.Scatter(
        x=[row["control_change"]], y=[row["target_gain"]], mode="markers", name=row["group"],
        marker={"color": color, "size": 16 if reference else _marker_px(row["trainable_percent"]),
                "symbol": "star" if reference else "circle", "line": ring},
        error_x={**_error(row["control_change ±"]), "color": color},
        error_y={**_error(row["target_gain ±"]), "color": color},
        opacity=0.25 if faded else 0.85, hovertext=[_tradeoff_hover(row)], hoverinfo="text")


def tradeoff_plot(table: pd.DataFrame, highlight: Iterable[str] = (), labels: int = 8,
                  colors: dict[str, str] | None = None) -> go.Figure:
    """Target change vs mean control change (both vs zero-shot) with 95% CI error bars, size =
    trainable %, the Pareto front ringed and joined. Only the first `labels` rows and the
    highlighted ones are labelled, placed so that labels do not collide; the rest are in the
    legend and the hover."""
    data, highlight = tradeoff_data(table), set(highlight)
    colors = _with_defaults(colors, data["group"])
    fig = go.Figure()
    front = data[data["pareto"].astype(bool)].sort_values("control_change")
    fig.add_trace(go.Scatter(  # first, so it lies below the points
        x=front["control_change"], y=front["target_gain"], mode="lines", name="Pareto front",
        line={"color": "#999", "dash": "dot", "width": 1.5}, hoverinfo="skip"))
    faded = [bool(highlight) and g not in highlight and g != ZERO_SHOT for g in data["group"]]
    for (_, row), fade in zip(data.iterrows(), faded):
        fig.add_trace(_point(row, colors[row["group"]], fade))
    xr = _axis_range(data["control_change"], data["control_change ±"])
    yr = _axis_range(data["target_gain"], data["target_gain ±"])
    chosen = [i for i, g in enumerate(data["group"]) if i < labels or g in highlight]
    for i, (dx, dy) in _place_labels(data, chosen, xr, yr).items():
        row = data.iloc[i]
        fig.add_annotation(
            x=row["control_change"], y=row["target_gain"], text=row["group"], ax=dx, ay=-dy,
            xanchor="center", yanchor="middle", showarrow=True, arrowhead=0, arrowwidth=0.8,
            arrowcolor="#aaa", font={"size": 11},
            opacity=0.4 if faded[i] else 1.0)
    zero = {"zeroline": True, "zerolinewidth": 1, "zerolinecolor": "#888"}
    fig.update_layout(
        title=f"Trade-off vs zero-shot ({CI_TEXT}; size = trainable %)",
        xaxis={"title": _axis_title("control_change"), "range": xr, **zero},
        yaxis={"title": _axis_title("target_gain"), "range": yr, **zero},
        legend_title="strategy", template="plotly_white")
    _legend_below(fig, ["Pareto front", *data["group"]], plot_px=PLOT_PX[1], top_px=60)
    return fig


def to_html(fig: go.Figure) -> bytes:
    """A standalone HTML file of the figure (plotly.js embedded, so it opens offline)."""
    return fig.to_html(include_plotlyjs=True, full_html=True).encode()
