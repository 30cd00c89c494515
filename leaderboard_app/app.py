"""The leaderboard app (Streamlit): thin page code over `data`, `tables` and `figures`.

Start it with `clbench app [--db URL] [--port N]`, or deploy it on its own with
`streamlit run leaderboard_app/app.py -- --db URL` (or CLBENCH_DB=URL). It opens the results
store read-only and never writes to it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import streamlit as st

from clbench.leaderboard_app import figures, tables
from clbench.leaderboard_app.data import RUN_HINT, Data, StoreProblem, load
from clbench.leaderboard_app.data import open_store as _open_store
from clbench.leaderboard_app.tables import control_names

PAGES = ("Leaderboard", "Forgetting curves", "Per-session comparison", "Trade-off",
         "Run detail and compare")
CACHE_S = 30  # new runs show up within this many seconds


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


def sidebar(data: Data) -> tuple[str, tables.Filters]:
    runs = data.runs
    sb = st.sidebar
    sb.title("clbench leaderboard")
    # ?page=Trade-off opens a page directly (links, screenshots)
    asked = st.query_params.get("page")
    page = sb.radio("Page", PAGES, key="page",
                    index=PAGES.index(asked) if asked in PAGES else 0)
    scenarios = tables.options(runs, "scenario")
    scenario = sb.selectbox("Scenario", scenarios, key="scenario")
    in_scenario = runs[runs["scenario"] == scenario]
    backbone = sb.selectbox("Backbone", tables.options(in_scenario, "backbone"), key="backbone")
    shots = sb.multiselect("Shots", tables.options(in_scenario, "shots"), key="shots",
                           help="empty: any")
    strategies = sb.multiselect("Strategies", tables.options(in_scenario, "strategy"),
                                key="strategies", help="empty: all")
    days = sorted(runs["created_at"].dt.date.unique())
    since = sb.date_input("Runs from", value=days[0], key="since")
    until = sb.date_input("Runs until", value=days[-1], key="until")
    commit = sb.radio("Code", ["any", "clean", "dirty"], key="commit", horizontal=True,
                      help="clean: run from a committed git tree; dirty: uncommitted changes "
                      "or no git information")
    return page, tables.Filters(scenario=scenario, backbone=backbone, shots=shots or None,
                                strategies=strategies or None, since=since, until=until,
                                commit=commit)


def show_figure(fig, name: str) -> None:
    """A figure with its PNG (camera button in the figure's toolbar) and HTML downloads."""
    st.plotly_chart(fig, config={"toImageButtonOptions": {"format": "png", "filename": name,
                                                          "scale": 2}})
    st.download_button(f"Download {name}.html", figures.to_html(fig), f"{name}.html",
                       "text/html", key=f"html-{name}")


def leaderboard_page(data: Data, f: tables.Filters) -> None:
    st.header("Leaderboard")
    population = tables.context(data.runs, f)
    controls = control_names(population)
    cols = tables.metric_columns(controls)
    left, right = st.columns([3, 1])
    names = [c.name for c in cols]
    rank_by = left.selectbox("Rank by", names, key="rank_by",
                             index=names.index(tables.DEFAULT_RANK),
                             format_func=lambda n: next(c.header for c in cols if c.name == n))
    min_seeds = right.number_input("Minimum seeds", min_value=1, value=1, step=1,
                                   key="min_seeds", help="hide presets run on fewer seeds")
    table = tables.leaderboard(data.runs, f, rank_by, min_seeds=int(min_seeds))
    counted = int(tables.filter_runs(data.runs, f).shape[0])
    skipped = ", ".join(f"{n} {s}" for s, n in sorted(data.other_statuses.items()))
    st.caption(f"{counted} completed runs pass the filters" + (f" ({skipped} runs are never "
               "counted)" if skipped else "") + ". Mean over seeds ± one std; accuracies in %, "
               "changes in points against zero-shot. ↑ higher is better, ↓ lower is better.")
    config = {"rank": st.column_config.NumberColumn("#", width="small"),
              "group": None, "strategy": "strategy", "preset": "preset",
              "seeds": st.column_config.NumberColumn("seeds"), "runs": None}
    for c in cols:
        digits = "%.2f" if c.metric == "trainable_percent" else "%.1f"
        config[c.name] = st.column_config.NumberColumn(c.header, format=digits, help=c.tooltip)
        config[c.name + " ±"] = st.column_config.TextColumn("±")
    st.dataframe(tables.with_std_text(table), column_config=config, hide_index=True,
                 key="leaderboard")
    st.download_button("Download table (CSV)", tables.export_csv(table, controls),
                       "leaderboard.csv", "text/csv", key="csv")


def eval_sets_of(data: Data, runs) -> list[str]:
    sets = data.evals[data.evals["run_id"].isin(runs["id"])]["eval_set"]
    return list(dict.fromkeys(sets))


def curves_page(data: Data, f: tables.Filters) -> None:
    st.header("Forgetting curves")
    runs = tables.filter_runs(data.runs, f)
    sets = eval_sets_of(data, runs)
    chosen = st.multiselect("Eval sets", sets, default=sets, key="curve_sets")
    if runs.empty:
        st.info("No completed run passes the filters.")
    targets = set(runs["target"].dropna()) if "target" in runs else set()
    for eval_set in chosen:
        role = "target" if eval_set in targets else "control"
        show_figure(figures.forgetting_curves(runs, data.evals, eval_set, role),
                    f"curves-{eval_set}")


def run_label(runs, run_id: str) -> str:
    row = runs[runs["id"] == run_id].iloc[0]
    return f"{row['group']} · seed {row['seed']} · {run_id[:12]}"


def sessions_page(data: Data, f: tables.Filters, db: str | None) -> None:
    st.header("Per-session comparison")
    runs = tables.filter_runs(data.runs, f)
    if runs.empty:
        st.info("No completed run passes the filters.")
        return
    sets = eval_sets_of(data, runs)
    eval_set = st.selectbox("Eval set", sets, key="bars_set")
    show_figure(figures.session_bars(runs, data.evals, eval_set), f"sessions-{eval_set}")
    st.subheader("Accuracy matrix of one run")
    ids = runs["id"].tolist()
    run_id = st.selectbox("Run", ids, key="matrix_run", format_func=lambda i: run_label(runs, i))
    run = get_run(db, run_id)
    target = run.get("summary", {}).get("target") or eval_set
    show_figure(figures.accuracy_heatmap(run, target), f"matrix-{run_id[:12]}")


def tradeoff_page(data: Data, f: tables.Filters) -> None:
    st.header("Trade-off")
    controls = control_names(tables.context(data.runs, f))
    chosen = st.multiselect("Controls averaged on the x axis", controls, default=controls,
                            key="tradeoff_controls")
    table = tables.leaderboard(data.runs, f)
    show_figure(figures.tradeoff_plot(table, chosen), "tradeoff")
    st.caption("Up is more gained on the target, right is less lost on the controls; red "
               "points are not beaten on both at once (the Pareto front).")


def detail_page(data: Data, f: tables.Filters, db: str | None) -> None:
    st.header("Run detail and compare")
    runs = tables.filter_runs(data.runs, f)
    if runs.empty:
        st.info("No completed run passes the filters.")
        return
    ids = runs["id"].tolist()
    run_id = st.selectbox("Run", ids, key="detail_run", format_func=lambda i: run_label(runs, i))
    run = get_run(db, run_id)
    left, right = st.columns(2)
    with left:
        st.markdown("**Config**")
        st.json(run.get("config") or {}, expanded=True)
    with right:
        st.markdown("**Provenance**")
        st.json(json.loads(json.dumps(tables.provenance(run), default=str)), expanded=True)
    st.markdown("**Sessions**")
    st.dataframe(tables.sessions_table(run), hide_index=True)
    st.subheader("Compare runs")
    picked = st.multiselect("Runs to compare (two or more)", ids, key="compare_runs",
                            format_func=lambda i: run_label(runs, i))
    if len(picked) >= 2:
        st.dataframe(tables.compare_runs([get_run(db, i) for i in picked]))
    elif picked:
        st.caption("Pick at least one more run.")


def main(argv: list[str]) -> None:
    st.set_page_config(page_title="clbench leaderboard", layout="wide")
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
    page, f = sidebar(data)
    if page == "Leaderboard":
        leaderboard_page(data, f)
    elif page == "Forgetting curves":
        curves_page(data, f)
    elif page == "Per-session comparison":
        sessions_page(data, f, db)
    elif page == "Trade-off":
        tradeoff_page(data, f)
    else:
        detail_page(data, f, db)


main(sys.argv[1:])
