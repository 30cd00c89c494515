"""The leaderboard app (Streamlit): thin page code over `data`, `tables` and `figures`.

Start it with `clbench app [--db URL] [--port N]`, or deploy it on its own with
`streamlit run leaderboard_app/app.py -- --db URL` (or CLBENCH_DB=URL). It opens the results
store read-only and never writes to it. Every page works under the sidebar's filters, ranking
and seed rule; all of them live in the URL (`url_state`), so a link opens what it showed.
A page is one function of the sidebar's `View` and one entry in `PAGES`; its metric columns,
headers and tooltips come from the declarations in `clbench.metrics`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import date

import streamlit as st

from clbench.leaderboard_app import figures, tables, url_state
from clbench.leaderboard_app.data import RUN_HINT, Data, StoreProblem, load
from clbench.leaderboard_app.data import open_store as _open_store
from clbench.leaderboard_app.tables import control_names

CACHE_S = 30  # new runs show up within this many seconds
ROW_PX, HEADER_PX = 35, 38  # st.dataframe's row and header heights: the table fits its rows


def db_argument(argv: list[str]) -> str | None:
    """--db URL from the script arguments (`streamlit run app.py -- --db URL`), else CLBENCH_DB."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--db")
    known, _ = parser.parse_known_args(argv)
    return known.db or os.environ.get("CLBENCH_DB") or None


@st.cache_resource(show_spinner=False)
def open_store(db: str | None):
    return _open_store(db)


@st.cache_resource(ttl=CACHE_S, show_spinner="Reading the results store ...")
def load_data(db: str | None) -> Data:
    return load(open_store(db))


@st.cache_data(ttl=CACHE_S, show_spinner=False, max_entries=64)
def get_run(db: str | None, run_id: str) -> dict:
    return open_store(db).get_run(run_id)


def problem_page(problem: StoreProblem) -> None:
    st.title("clbench leaderboard")
    st.error(f"**{problem.title}**: {problem.what}")
    st.markdown("**What to run**")
    st.code(problem.todo, language="text")


class View:
    """What the sidebar chose: filters, ranking, seed rule, and which presets the plots draw;
    every page draws itself from one (`PAGES`)."""

    def __init__(self, data: Data, f: tables.Filters, rank_by: str, top: int,
                 highlight: list[str], db: str | None = None):
        self.data, self.f, self.rank_by, self.db = data, f, rank_by, db
        self.top, self.highlight = top, highlight
        self.runs = tables.filter_runs(data.runs, f)
        self.table = tables.leaderboard(data.runs, f, rank_by)
        self.controls = control_names(tables.context(data.runs, f))
        # one colour per preset on every page, from every preset of the scenario
        self.colors = figures.group_colors(tables.options(tables.context(data.runs, f),
                                                          "group"))

    @property
    def drawn_runs(self):
        """Runs of the presets the plots draw: the top N by the ranking, the highlighted ones
        and the reference bounds (the zero-shot line is drawn from every run's session 0)."""
        groups = tables.drawn_groups(self.table, self.top, self.highlight)
        return self.runs[self.runs["group"].isin(groups)]

    def drawn_caption(self) -> None:
        methods = int(self.table["rank"].notna().sum())
        if methods > self.top:
            st.caption(f"Drawing the top {self.top} of {methods} presets by the ranking, plus "
                       "highlighted ones and references (sidebar: presets drawn, highlight).")


def sidebar(data: Data, pages: list[str], db: str | None = None) -> tuple[str, View]:
    runs = data.runs
    sb = st.sidebar
    sb.title("clbench leaderboard")
    url_state.restore("page", pages[0], pages)
    page = sb.radio("Page", pages, key="page")
    scenarios = tables.options(runs, "scenario")
    url_state.restore("scenario", scenarios[0], scenarios)
    scenario = sb.selectbox("Scenario", scenarios, key="scenario")
    in_scenario = runs[runs["scenario"] == scenario]
    backbones = tables.options(in_scenario, "backbone")
    url_state.restore("backbone", backbones[0], backbones)
    backbone = sb.selectbox("Backbone", backbones, key="backbone")
    shot_options = tables.options(in_scenario, "shots")
    url_state.restore("shots", [], shot_options, kind=int, many=True)
    shots = sb.multiselect("Shots", shot_options, key="shots", help="empty: any")
    strategy_options = tables.options(in_scenario, "strategy")
    url_state.restore("strategies", [], strategy_options, many=True)
    strategies = sb.multiselect("Strategies", strategy_options, key="strategies",
                                help="empty: all")
    days = sorted(runs["created_at"].dt.date.unique())
    url_state.restore("since", days[0], kind=date)
    since = sb.date_input("Runs from", key="since")
    url_state.restore("until", days[-1], kind=date)
    until = sb.date_input("Runs until", key="until")
    url_state.restore("commit", "any", ["any", "clean", "dirty"])
    commit = sb.radio("Code", ["any", "clean", "dirty"], key="commit", horizontal=True,
                      help="clean: run from a committed git tree; dirty: uncommitted changes "
                      "or no git information")
    origins = ["any", "built-in", "third-party"]
    url_state.restore("origin", "any", origins)
    origin = sb.radio("Strategies from", origins, key="origin", horizontal=True,
                      help="built-in: clbench's own strategies; third-party: strategies from "
                      "plugin packages (marked †; their package and version are in Runs)")
    url_state.restore("verified", False, kind=bool)
    verified = sb.checkbox("Verified only", key="verified",
                           help="only runs that `clbench reproduce` re-ran within tolerance on "
                           "another host, or imported from a bundle and reproduced here "
                           "(marked ✓)")
    url_state.restore("few", False, kind=bool)
    few = sb.checkbox("Show presets with fewer seeds than required", key="few",
                      help="a scenario declares how many seeds a result needs (`seeds:`, 3 by "
                      "default); presets run on fewer are hidden on every page unless this is "
                      "ticked, and marked ⚠ when shown")
    f = tables.Filters(scenario=scenario, backbone=backbone, shots=shots or None,
                       strategies=strategies or None, since=since, until=until, commit=commit,
                       show_few_seeds=few, origin=origin, verified_only=verified)
    cols = tables.metric_columns(control_names(tables.context(runs, f)))
    names = [c.name for c in cols]
    headers = {c.name: c.header for c in cols}
    sb.divider()
    url_state.restore("rank", tables.DEFAULT_RANK, names)
    rank_by = sb.selectbox("Rank by", names, key="rank", format_func=headers.get,
                           help="the ranking of the table and the order in which plots pick "
                           "their top presets; default: the balanced score, target change "
                           "plus mean control change")
    url_state.restore("top", 10, kind=int, valid=lambda n: 1 <= n <= 100)
    top = sb.number_input("Presets drawn in plots", min_value=1, max_value=100, step=1,
                          key="top", help="plots draw the top N presets by the ranking")
    groups = tables.options(tables.filter_runs(runs, f), "group")
    url_state.restore("highlight", [], groups, many=True)
    highlight = sb.multiselect("Highlight", groups, key="highlight",
                               help="drawn in colour on every plot, the others in grey")
    return page, View(data, f, rank_by, int(top), highlight, db)


def show_figure(fig, name: str) -> None:
    """A figure with its PNG (camera button in the figure's toolbar) and HTML downloads."""
    st.plotly_chart(fig, config={"toImageButtonOptions": {"format": "png", "filename": name,
                                                          "scale": 2}})
    st.download_button(f"Download {name}.html", figures.to_html(fig), f"{name}.html",
                       "text/html", key=f"html-{name}")


def open_preset() -> None:
    """A click on a leaderboard row opens that preset's page."""
    rows = st.session_state["board"].selection.rows
    order = st.session_state.get("_board_groups", [])
    if rows and rows[0] < len(order) and order[rows[0]] != tables.ZERO_SHOT:
        st.session_state["preset"] = order[rows[0]]
        st.session_state["page"] = "Presets"


def show_few_seeds() -> None:
    st.session_state["few"] = True


def leaderboard_page(v: View) -> None:
    st.header("Leaderboard")
    cols = tables.metric_columns(v.controls)
    names = [c.name for c in cols]
    url_state.restore("columns", list(tables.default_columns()), names, many=True)
    shown = st.multiselect("Columns", names, key="columns",
                           format_func=lambda n: next(c.header for c in cols if c.name == n),
                           help="rank, strategy, preset and seeds are always shown")
    table = v.table
    counted = int(v.runs.shape[0])
    skipped = ", ".join(f"{n} {s}" for s, n in sorted(v.data.other_statuses.items()))
    st.caption(f"{counted} completed runs pass the filters" + (f" ({skipped} runs are never "
               "counted)" if skipped else "") + ". Mean over seeds ± 95% confidence interval; "
               "accuracies in %, changes in points against zero-shot; ↑ higher is better, ↓ "
               "lower is better; ★ best method per column; † a third-party strategy (a plugin "
               "package); ✓ verified by a reproduction elsewhere; hover a header for its definition. Click a row to open its preset.")
    hidden = tables.few_seed_groups(v.data.runs, v.f)
    if not v.f.show_few_seeds and not hidden.empty:
        left, right = st.columns([4, 1])
        left.warning(f"{len(hidden)} preset(s) run on fewer seeds than the scenario requires "
                     f"are hidden: {', '.join(hidden.index[:5])}"
                     + (" ..." if len(hidden) > 5 else ""))
        right.button("Show them", on_click=show_few_seeds, key="show_few")
    shown_cols = [c for c in cols if c.name in shown]
    config = {"rank": st.column_config.Column("#", width=36, pinned=True),
              "strategy": st.column_config.Column("strategy", width=92, pinned=True),
              "preset": st.column_config.Column("preset", width=112, pinned=True),
              "seeds": st.column_config.Column(
                  "seeds", width=52, help="seeds the row averages (⚠: fewer than its scenario "
                  "requires)")}
    for c in shown_cols:  # "24.0 ± 6.9 ★" fits in 88 px
        config[c.name] = st.column_config.Column(c.header, help=c.tooltip, width=88)
    st.session_state["_board_groups"] = table["group"].tolist()
    left, right = st.columns([2, 1])
    with left:
        st.dataframe(tables.styled(table, cols, shown), column_config=config, hide_index=True,
                     column_order=["rank", "strategy", "preset", "seeds", *shown],
                     height=HEADER_PX + ROW_PX * len(table) + 3, key="board", placeholder="–",
                     on_select=open_preset, selection_mode="single-row")
        st.download_button("Download table (CSV)", tables.export_csv(table, v.controls),
                           "leaderboard.csv", "text/csv", key="csv")
    with right:  # the same table as a picture; the Trade-off page has the full-size one
        fig = figures.tradeoff_plot(v.table, highlight=v.highlight, labels=min(v.top, 5),
                                    colors=v.colors)
        fig.update_layout(title="Trade-off (mean ± 95% CI)", showlegend=False,
                          height=HEADER_PX + ROW_PX * max(len(table), 12))
        st.plotly_chart(fig, key="board_tradeoff")


def eval_sets_of(data: Data, runs) -> list[str]:
    sets = data.evals[data.evals["run_id"].isin(runs["id"])]["eval_set"]
    return list(dict.fromkeys(sets))


def roles_of(runs, sets: list[str]) -> dict[str, str]:
    targets = set(runs["target"].dropna()) if "target" in runs else set()
    return {s: "target" if s in targets else "control" for s in sets}


def curves_page(v: View) -> None:
    st.header("Forgetting curves")
    runs = tables.without_zero_shot(v.drawn_runs)
    sets = eval_sets_of(v.data, v.runs)
    url_state.restore("sets", sets, sets, many=True)
    chosen = st.multiselect("Eval sets", sets, key="sets")
    if runs.empty:
        st.info("No completed run passes the filters.")
        return
    v.drawn_caption()
    show_figure(figures.forgetting_curves(runs, v.data.evals, chosen, roles_of(runs, chosen),
                                          highlight=v.highlight, colors=v.colors), "curves")


def sessions_page(v: View) -> None:
    st.header("Per-session comparison")
    runs = tables.without_zero_shot(v.drawn_runs)
    if runs.empty:
        st.info("No completed run passes the filters.")
        return
    sets = eval_sets_of(v.data, runs)
    url_state.restore("set", sets[0], sets)
    eval_set = st.selectbox("Eval set", sets, key="set")
    v.drawn_caption()
    show_figure(figures.session_bars(runs, v.data.evals, eval_set, colors=v.colors),
                f"sessions-{eval_set}")


def tradeoff_page(v: View) -> None:
    st.header("Trade-off")
    url_state.restore("mean_of", v.controls, v.controls, many=True)
    chosen = st.multiselect("Controls averaged on the x axis", v.controls, key="mean_of")
    table = tables.leaderboard(v.data.runs, v.f, v.rank_by, mean_of=chosen)
    show_figure(figures.tradeoff_plot(table, highlight=v.highlight, labels=v.top,
                                      colors=v.colors), "tradeoff")
    st.caption("Up is more gained on the target, right is less lost on the controls; error "
               "bars are 95% confidence intervals over seeds; ringed points are not beaten on "
               "both at once (the Pareto front, dotted); size is the trainable share. Labels "
               "name the top presets by the ranking and the highlighted ones.")


def presets_page(v: View) -> None:
    st.header("Presets")
    groups = [g for g in v.table["group"] if g != tables.ZERO_SHOT]
    if not groups:
        st.info("No preset passes the filters.")
        return
    url_state.restore("preset", groups[0], groups)
    preset = st.selectbox("Preset", groups, key="preset",
                          help="a strategy with its settings; a leaderboard row opens it")
    others = [g for g in groups if g != preset]
    url_state.restore("compare", [], others, many=True)
    compare = st.multiselect("Compare with", others, key="compare")
    chosen = [preset, *compare]
    st.dataframe(tables.presets_side_by_side(v.table, chosen, v.controls),
                 height=HEADER_PX + ROW_PX * len(tables.metric_columns(v.controls)) + 3 * ROW_PX)
    runs = v.runs[v.runs["group"].isin(chosen)]
    st.subheader("Runs")
    st.dataframe(tables.runs_list(runs), hide_index=True,
                 height=HEADER_PX + ROW_PX * len(runs) + 3)
    sets = eval_sets_of(v.data, runs)
    st.subheader("Curves (mean over seeds)")
    show_figure(figures.forgetting_curves(runs, v.data.evals, sets, roles_of(runs, sets),
                                          colors=v.colors), "preset-curves")
    st.subheader("Accuracy matrix (mean over seeds)")
    url_state.restore("matrix_set", sets[0], sets)
    eval_set = st.selectbox("Eval set", sets, key="matrix_set",
                            help="rows: after which session it was evaluated (zero-shot on "
                            "top); columns: the classes of which session")
    by_group = {g: runs[runs["group"] == g] for g in chosen}
    show_figure(figures.accuracy_heatmaps(
        {g: figures.seed_mean_matrix(r, v.data.evals, eval_set) for g, r in by_group.items()},
        eval_set, seeds={g: int(r["seed"].nunique()) for g, r in by_group.items()}),
        "preset-matrix")


def runs_page(v: View) -> None:
    st.header("Runs")
    runs = tables.in_ranking_order(v.runs, v.table)
    if runs.empty:
        st.info("No completed run passes the filters.")
        return
    labels = tables.run_labels(runs)
    ids = runs["id"].tolist()
    url_state.restore("run", ids[0], ids)
    run_id = st.selectbox("Run", ids, key="run", format_func=lambda i: labels.get(i, i))
    run = get_run(v.db, run_id)
    headline = tables.headline(run)
    for column, (name, value) in zip(st.columns(len(headline)), headline.items()):
        column.metric(name, value)
    one = runs[runs["id"] == run_id]
    sets = eval_sets_of(v.data, one)
    show_figure(figures.forgetting_curves(one, v.data.evals, sets, roles_of(one, sets),
                                          colors=v.colors), f"run-{run_id[:12]}")
    left, right = st.columns(2)
    left.markdown("**Settings**")
    left.dataframe(tables.key_values(run.get("config") or {}), hide_index=True)
    right.markdown("**Provenance**")
    right.dataframe(tables.key_values(tables.provenance(run)), hide_index=True)
    st.markdown("**Sessions**")
    st.dataframe(tables.sessions_table(run), hide_index=True)
    st.subheader("Compare runs")
    url_state.restore("compare_runs", [], ids, many=True)
    picked = st.multiselect("Runs to compare (two or more)", ids, key="compare_runs",
                            format_func=lambda i: labels.get(i, i))
    if len(picked) >= 2:
        st.dataframe(tables.compare_runs([get_run(v.db, i) for i in picked],
                                         [labels[i] for i in picked]))
    elif picked:
        st.caption("Pick at least one more run.")


# The pages in sidebar order: a page is a function drawing itself from the sidebar's View (its
# tables and figures as pure functions in `tables` and `figures`), added here by one entry.
PAGES: dict[str, Callable[[View], None]] = {
    "Leaderboard": leaderboard_page,
    "Forgetting curves": curves_page,
    "Per-session comparison": sessions_page,
    "Trade-off": tradeoff_page,
    "Presets": presets_page,
    "Runs": runs_page,
}


def main(argv: list[str], pages: dict[str, Callable[[View], None]] = PAGES) -> None:
    """Draw the app: the chosen page of `pages` under the sidebar (a problem page when the
    store cannot back a leaderboard)."""
    st.set_page_config(page_title="clbench leaderboard", layout="wide")
    url_state.start_run()
    db = db_argument(argv)
    try:
        data = load_data(db)
    except StoreProblem as problem:
        problem_page(problem)
        return
    if data.runs.empty:
        where = getattr(open_store(db), "shown_as", db)
        others = ", ".join(f"{n} {s}" for s, n in sorted(data.other_statuses.items()))
        problem_page(StoreProblem(
            "No completed runs yet",
            f"the results database {where} holds no completed run"
            + (f" ({others}; those are never counted)" if others else "") + ".",
            "Record one, e.g.\n\n    " + RUN_HINT.format(db=where)))
        return
    page, view = sidebar(data, list(pages), db)
    pages[page](view)
    url_state.publish()


if __name__ == "__main__":  # `streamlit run` (and AppTest) run this file as __main__
    main(sys.argv[1:])
