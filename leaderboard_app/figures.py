"""Plotly figures of the leaderboard, as pure functions of the loaded frames.

Accuracies are stored as fractions and drawn in %. Seed spread is shown the same way on every
figure: per seed the runs of a preset are averaged, then the line/bar is the mean over seeds and
the band/error bar one sample standard deviation (none with a single seed).
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from clbench.metrics import METRICS, accuracy_matrix

# 48 distinct colours: a board of many presets should not repeat a colour
PALETTE = tuple(qualitative.Dark24 + qualitative.Light24)


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _colors(groups: list[str]) -> dict[str, str]:
    return {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(sorted(groups))}


def curve_data(runs: pd.DataFrame, evals: pd.DataFrame, eval_set: str) -> pd.DataFrame:
    """Mean and std over seeds of the `all` accuracy on `eval_set` after each session (0 is
    zero-shot), per group: columns group, after_session, mean, std, seeds (in %)."""
    columns = ["group", "after_session", "mean", "std", "seeds"]
    if runs.empty or evals.empty:
        return pd.DataFrame(columns=columns)
    rows = evals[(evals["eval_set"] == eval_set) & (evals["subset"] == "all")
                 & evals["run_id"].isin(runs["id"])]
    rows = rows.merge(runs[["id", "group", "seed"]], left_on="run_id", right_on="id")
    per_seed = rows.groupby(["group", "after_session", "seed"])["accuracy"].mean() * 100
    stats = per_seed.groupby(["group", "after_session"]).agg(["mean", "std", "count"])
    stats = stats.rename(columns={"count": "seeds"}).reset_index()
    return stats[columns]


def forgetting_curves(runs: pd.DataFrame, evals: pd.DataFrame, eval_set: str,
                      role: str | None = None) -> go.Figure:
    """Accuracy on one eval set after each session, a line per strategy preset, a band of
    ± one std over seeds, and the zero-shot accuracy (session 0, mean over the runs shown) as a
    dashed reference line. `role` ("target" or "control") is named in the title."""
    data = curve_data(runs, evals, eval_set)
    fig = go.Figure()
    colors = _colors(data["group"].unique().tolist())
    for group, g in data.groupby("group", sort=True):
        g = g.sort_values("after_session")
        std = g["std"].fillna(0.0)
        x = g["after_session"].tolist()
        fig.add_trace(go.Scatter(  # the band: a filled outline, no markers at its corners
            x=x + x[::-1], y=(g["mean"] + std).tolist() + (g["mean"] - std).tolist()[::-1],
            mode="lines", fill="toself", fillcolor=_rgba(colors[group], 0.15),
            line={"width": 0}, hoverinfo="skip", showlegend=False, legendgroup=group,
            name=f"{group} band"))
        fig.add_trace(go.Scatter(
            x=x, y=g["mean"], mode="lines+markers", name=group, legendgroup=group,
            line={"color": colors[group]},
            customdata=g[["std", "seeds"]].to_numpy(),
            hovertemplate="%{fullData.name}<br>after session %{x}: %{y:.1f}%"
                          " ± %{customdata[0]:.1f} (%{customdata[1]} seeds)<extra></extra>"))
    zero_shot = data.loc[data["after_session"] == 0, "mean"]
    if not zero_shot.empty:
        fig.add_hline(y=float(zero_shot.mean()), line={"dash": "dash", "color": "#555"},
                      annotation_text=f"zero-shot {zero_shot.mean():.1f}%",
                      annotation_position="bottom right")
    named = f"{eval_set} ({role})" if role else eval_set
    fig.update_layout(title=f"{named}: accuracy after each session (0 = zero-shot)",
                      xaxis_title="after session", yaxis_title="accuracy %",
                      xaxis={"dtick": 1}, legend_title="strategy", template="plotly_white")
    return fig


def session_bars(runs: pd.DataFrame, evals: pd.DataFrame, eval_set: str) -> go.Figure:
    """Grouped bars: for each session, the strategies side by side (mean ± std over seeds)."""
    data = curve_data(runs, evals, eval_set)
    fig = go.Figure()
    colors = _colors(data["group"].unique().tolist())
    for group, g in data.groupby("group", sort=True):
        g = g.sort_values("after_session")
        fig.add_trace(go.Bar(
            x=[("zero-shot" if s == 0 else f"session {s}") for s in g["after_session"]],
            y=g["mean"], name=group, marker_color=colors[group],
            error_y={"type": "data", "array": g["std"].fillna(0.0).tolist(), "visible": True}))
    fig.update_layout(barmode="group", title=f"{eval_set}: accuracy after each session",
                      yaxis_title="accuracy %", legend_title="strategy",
                      template="plotly_white")
    return fig


def accuracy_heatmap(run: dict, eval_set: str) -> go.Figure:
    """A[i][j] of one run: accuracy after session i on the classes of session j (in %)."""
    sessions = len(run.get("sessions", [])) or max(
        (e["after_session"] for e in run.get("evaluations", [])), default=0)
    matrix = accuracy_matrix(run.get("evaluations", []), eval_set, sessions)
    z = [[None if a is None else 100 * a for a in row] for row in matrix]
    text = [["" if a is None else f"{a:.1f}" for a in row] for row in z]
    fig = go.Figure(go.Heatmap(
        z=z, text=text, texttemplate="%{text}", colorscale="Viridis", zmin=0, zmax=100,
        x=[f"classes of S{j}" for j in range(1, sessions + 1)],
        y=[f"after S{i}" for i in range(1, sessions + 1)], colorbar={"title": "%"},
        hovertemplate="%{y}, %{x}: %{z:.1f}%<extra></extra>"))
    fig.update_layout(title=f"{run.get('strategy')} seed {run.get('seed')} "
                            f"({run['id'][:12]}): {eval_set} accuracy matrix",
                      yaxis={"autorange": "reversed"}, template="plotly_white")
    return fig


def pareto_front(points: pd.DataFrame, x: str, y: str, x_metric: str, y_metric: str) -> pd.Series:
    """Whether each point is on the Pareto front: no other point is at least as good on both
    axes and better on one, "good" following each metric's direction in METRICS."""
    sx = 1 if METRICS[x_metric].higher_is_better else -1
    sy = 1 if METRICS[y_metric].higher_is_better else -1
    vx, vy = points[x].to_numpy() * sx, points[y].to_numpy() * sy
    front = []
    for i in range(len(points)):
        dominated = ((vx >= vx[i]) & (vy >= vy[i]) & ((vx > vx[i]) | (vy > vy[i]))).any()
        front.append(not dominated)
    return pd.Series(front, index=points.index)


def tradeoff_data(table: pd.DataFrame, controls: list[str]) -> pd.DataFrame:
    """Per leaderboard row: target gain and the mean change over the chosen controls (in %)."""
    change_cols = [f"control:{c}:change" for c in controls if f"control:{c}:change" in table]
    out = table[["group", "seeds", "target_gain", "trainable_percent"]].copy()
    out["control_change"] = table[change_cols].mean(axis=1) if change_cols else float("nan")
    out = out.dropna(subset=["target_gain", "control_change"])
    if not out.empty:
        out["pareto"] = pareto_front(out, "control_change", "target_gain", "control_change",
                                     "target_gain")
    return out


def tradeoff_plot(table: pd.DataFrame, controls: list[str]) -> go.Figure:
    """Target gain vs control change (both vs zero-shot), point size = trainable %, the
    Pareto front drawn as a line."""
    data = tradeoff_data(table, controls)
    fig = go.Figure()
    if not data.empty:
        size = 10 + 40 * (data["trainable_percent"].fillna(0) / 100) ** 0.5
        fig.add_trace(go.Scatter(
            x=data["control_change"], y=data["target_gain"], mode="markers+text",
            text=data["group"], textposition="top center", name="strategy presets",
            marker={"size": size, "color": ["#d62728" if p else "#1f77b4"
                                            for p in data["pareto"]], "opacity": 0.7},
            customdata=data[["trainable_percent", "seeds"]].to_numpy(),
            hovertemplate="%{text}<br>control change %{x:.1f} pts<br>target gain %{y:.1f} pts"
                          "<br>trainable %{customdata[0]:.2f}% (%{customdata[1]} seeds)"
                          "<extra></extra>"))
        front = data[data["pareto"]].sort_values("control_change")
        fig.add_trace(go.Scatter(x=front["control_change"], y=front["target_gain"],
                                 mode="lines", name="Pareto front",
                                 line={"color": "#d62728", "dash": "dot"}))
    label = ", ".join(controls) if controls else "controls"
    fig.update_layout(title="Trade-off: target gain vs control change (size = trainable %)",
                      xaxis_title=f"control change vs zero-shot, points (mean of {label})",
                      yaxis_title="target gain vs zero-shot, points", template="plotly_white")
    return fig


def to_html(fig: go.Figure) -> bytes:
    """A standalone HTML file of the figure (plotly.js embedded, so it opens offline)."""
    return fig.to_html(include_plotlyjs=True, full_html=True).encode()
