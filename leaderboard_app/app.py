"""The leaderboard app (Streamlit): thin page code over `data`, `tables` and `figures`.

Start it with `clbench app [--db URL] [--port N] [--published FILE ...]`, or deploy it on its
own with `streamlit run leaderboard_app/app.py -- --db URL [--published FILE ...]` (or
CLBENCH_DB=URL, CLBENCH_PUBLISHED=FILE[:FILE...]). It opens the results store read-only and
never writes to it. Every page works under the sidebar's filters, ranking and seed rule; all of
them live in the URL (`url_state`), so a link opens what it showed. A page is one function of
the sidebar's `View` and one entry in `PAGES` (the matrix page of multi-dataset streams joins
them when the store holds such runs); its metric columns, headers and tooltips come from the
declarations in `clbench.metrics`. Published numbers (`clbench.published`: the built-in file
and the user's) are shown as reported rows beside the measured ones.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import date

import streamlit as st

from clbench import published as published_numbers
from clbench.errors import UserError
from clbench.leaderboard_app import figures, tables, url_state
from clbench.leaderboard_app.data import RUN_HINT, Data, StoreProblem, load
from clbench.leaderboard_app.data import open_store as _open_store
from clbench.leaderboard_app.tables import control_names
from clbench.metrics import MULTI_DATASET
from clbench.published import Published

CACHE_S = 30  # new runs show up within this many seconds
ROW_PX, HEADER_PX = 35, 38  # st.dataframe's row and header heights: the table fits its rows
PUBLISHED_ENV = "CLBENCH_PUBLISHED"  # files of published numbers, os.pathsep between them
# said wherever the proxy's numbers are ranked (the README's section on the proxy says why)
PROXY_CAVEAT = ("The embedded proxy is a 1.2 M-parameter CLIP: its ranking of methods is a "
                "fact about that world, not a prediction for real CLIPs (docs: Proxy vs paper).")
REPORTED_CAVEAT = ("Reported rows are papers' numbers on their own backbone (named in the "
                   "preset column), blue, with \"reported\" for seeds and their source; they "
                   "are placed after the measured rows and not ranked unless ticked above.")


def db_argument(argv: list[str]) -> str | None:
    """--db URL from the script arguments (`streamlit run app.py -- --db URL`), else CLBENCH_DB."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--db")
    known, _ = parser.parse_known_args(argv)
    return known.db or os.environ.get("CLBENCH_DB") or None


def published_arguments(argv: list[str]) -> list[str]:
    """--published FILE (repeatable) from the script arguments, else CLBENCH_PUBLISHED."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--published", action="append", default=[])
    known, _ = parser.parse_known_args(argv)
    from_env = [p for p in os.environ.get(PUBLISHED_ENV, "").split(os.pathsep) if p.strip()]
    return known.published or from_env


@st.cache_resource(ttl=CACHE_S, show_spinner=False)
def load_published(files: tuple[str, ...]) -> tuple[list[Published], list[str]]:
    """The built-in published numbers and each file's, with the one-line error of each file
    that cannot be read (`clbench app` refuses those before it starts; a deployment shows
    them and goes on with the others)."""
    entries: list[Published] = []
    problems: list[str] = []
    for path in [published_numbers.built_in_path(), *files]:
        try:
            entries += published_numbers.load_file(path)
        except UserError as err:
            problems.append(str(err))
    return entries, problems


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
                 highlight: list[str], db: str | None = None,
                 published: list[Published] | None = None):
        self.data, self.f, self.rank_by, self.db = data, f, rank_by, db
        self.top, self.highlight = top, highlight
        self.runs = tables.filter_runs(data.runs, f)
        self.table = tables.leaderboard(data.runs, f, rank_by)  # measured rows only
        population = tables.context(data.runs, f)
        self.protocol = tables.protocol_of(population)
        # the scenario's published numbers, the leaderboard's reported rows
        self.reported = tables.reported_for(published or [], f.scenario)
        self.controls = control_names(population)
        # the board's columns: what the runs hold, and the controls the reported rows name
        self.board_controls = self.controls + [c for c in tables.reported_controls(
            self.reported) if c not in self.controls]
        self.columns = tables.board_columns(population, self.board_controls)
        # one colour per preset on every page, from every preset of the scenario
        self.colors = figures.group_colors(tables.options(population, "group"))

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


def sidebar(data: Data, pages: list[str], db: str | None = None,
            published: list[Published] | None = None) -> tuple[str, View]:
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
    population = tables.context(runs, f)
    cols = tables.board_columns(population, control_names(population))
    names = [c.name for c in cols]
    headers = {c.name: c.header for c in cols}
    sb.divider()
    rank = tables.default_rank(tables.protocol_of(population))
    url_state.restore("rank", rank if rank in names else names[0], names)
    rank_by = sb.selectbox("Rank by", names, key="rank", format_func=headers.get,
                           help="the ranking of the table and the order in which plots pick "
                           "their top presets; default: the balanced score, target change "
                           "plus mean control change (a multi-dataset scenario: MTIL's Avg); "
                           "only the metrics the scenario's runs hold are offered")
    url_state.restore("top", 10, kind=int, valid=lambda n: 1 <= n <= 100)
    top = sb.number_input("Presets drawn in plots", min_value=1, max_value=100, step=1,
                          key="top", help="plots draw the top N presets by the ranking")
    groups = tables.options(tables.filter_runs(runs, f), "group")
    url_state.restore("highlight", [], groups, many=True)
    highlight = sb.multiselect("Highlight", groups, key="highlight",
                               help="drawn in colour on every plot, the others in grey")
    return page, View(data, f, rank_by, int(top), highlight, db, published)


def show_figure(fig, name: str) -> None:
    """A figure with its PNG (camera button in the figure's toolbar) and HTML downloads."""
    st.plotly_chart(fig, config={"toImageButtonOptions": {"format": "png", "filename": name,
                                                          "scale": 2}})
    st.download_button(f"Download {name}.html", figures.to_html(fig), f"{name}.html",
                       "text/html", key=f"html-{name}")


def open_preset() -> None:
    """A click on a leaderboard row opens that preset's page."""
    rows = st.session_state["board"].selection.rows
    order = st.session_state.get("_board_groups", [])  # None for a reported row: no preset
    if rows and rows[0] < len(order) and order[rows[0]] not in (tables.ZERO_SHOT, None):
        st.session_state["preset"] = order[rows[0]]
        st.session_state["page"] = "Presets"


def show_few_seeds() -> None:
    st.session_state["few"] = True


def reported_choices(v: View) -> tuple[bool, bool]:
    """(show the scenario's reported rows, rank them with the measured ones): two ticks above
    the board, drawn only where the scenario has published numbers."""
    if not v.reported:
        return False, False
    left, right = st.columns(2)
    url_state.restore("reported", True, kind=bool)
    show = left.checkbox(f"Show reported numbers ({len(v.reported)})", key="reported",
                         help="published numbers for this scenario (the built-in file and "
                         "`clbench app --published FILE`), each with its paper, table, backbone "
                         "and source")
    url_state.restore("rank_reported", False, kind=bool)
    ranked = right.checkbox("Rank reported numbers with measured runs", key="rank_reported",
                            disabled=not show, help="off: reported rows follow the measured "
                            "ones, unnumbered; on: they are placed and numbered among them")
    return show, show and ranked


def leaderboard_page(v: View) -> None:
    st.header("Leaderboard")
    cols = v.columns
    names = [c.name for c in cols]
    # a protocol's board keeps its own column choice (and URL parameter): a scenario of
    # another protocol has other columns
    key = "columns" if v.protocol not in tables.PROTOCOL_COLUMNS else f"columns-{v.protocol}"
    url_state.restore(key, [n for n in tables.default_columns(v.protocol) if n in names], names,
                      many=True)
    shown = st.multiselect("Columns", names, key=key,
                           format_func=lambda n: next(c.header for c in cols if c.name == n),
                           help="rank, strategy, preset and seeds are always shown; the "
                           "metrics this scenario's runs hold are offered")
    show_reported, rank_reported = reported_choices(v)
    table = tables.leaderboard(v.data.runs, v.f, v.rank_by, published=v.reported,
                               rank_published=rank_reported) if show_reported else v.table
    reported = show_reported and "reported" in table
    counted = int(v.runs.shape[0])
    skipped = ", ".join(f"{n} {s}" for s, n in sorted(v.data.other_statuses.items()))
    st.caption(f"{counted} completed runs pass the filters" + (f" ({skipped} runs are never "
               "counted)" if skipped else "") + ". Mean over seeds ± 95% confidence interval; "
               "accuracies in %, changes in points against zero-shot; ↑ higher is better, ↓ "
               "lower is better; ★ best method per column; † a third-party strategy (a plugin "
               "package); ✓ verified by a reproduction elsewhere; hover a header for its definition. Click a row to open its preset.")
    if v.protocol == MULTI_DATASET:
        st.caption("A multi-dataset stream (MTIL): every dataset learned one after another and "
                   "evaluated after every step. Its columns are ZSCL's Transfer (accuracy on a "
                   "dataset before it is trained), Avg (over every step) and Last (after the "
                   "last), each a mean over datasets; ranked by Avg by default. The matrix "
                   "page shows each dataset's.")
    if reported:
        st.caption(REPORTED_CAVEAT)
    if tables.is_proxy(v.f.backbone):
        st.info(PROXY_CAVEAT + (" The reported rows are real CLIPs: compare them with the "
                                "proxy's as two worlds, not as one ranking." if reported else ""))
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
                  "requires; \"reported\": a published number)")}
    for c in shown_cols:  # "24.0 ± 6.9 ★" fits in 88 px
        config[c.name] = st.column_config.Column(c.header, help=c.tooltip, width=88)
    extra = []
    if reported:
        config["source"] = st.column_config.Column(
            "source", width="large", help="a reported row's paper, table and source")
        extra = ["source"]
    # a click on a row opens its preset; a reported row has none
    st.session_state["_board_groups"] = [None if rep else g for g, rep in zip(
        table["group"], table.get("reported", [False] * len(table)))]
    multi = v.protocol == MULTI_DATASET  # no target or control change to plot beside it
    left, right = st.columns([2, 1]) if not multi else (st.container(), None)
    with left:
        st.dataframe(tables.styled(table, tables.metric_columns(v.board_controls), shown),
                     column_config=config, hide_index=True,
                     column_order=["rank", "strategy", "preset", "seeds", *shown, *extra],
                     height=HEADER_PX + ROW_PX * len(table) + 3, key="board", placeholder="–",
                     on_select=open_preset, selection_mode="single-row")
        st.download_button("Download table (CSV)", tables.export_csv(table, v.board_controls),
                           "leaderboard.csv", "text/csv", key="csv")
    if right is not None:
        with right:  # the same table as a picture; the Trade-off page has the full-size one
            fig = figures.tradeoff_plot(v.table, highlight=v.highlight,
                                        labels=min(v.top, 5), colors=v.colors)
            fig.update_layout(title="Trade-off (mean ± 95% CI)", showlegend=False,
                              height=HEADER_PX + ROW_PX * max(len(table), 12))
            st.plotly_chart(fig, key="board_tradeoff")


def eval_sets_of(data: Data, runs) -> list[str]:
    sets = data.evals[data.evals["run_id"].isin(runs["id"])]["eval_set"]
    return list(dict.fromkeys(sets))


def roles_of(runs, sets: list[str]) -> dict[str, str]:
    """A panel title's role of each eval set: target or control; a multi-dataset stream's
    datasets by the step that trains them."""
    multi = tables.multi_dataset_runs(runs)
    if not multi.empty:
        order = list(multi["datasets"].iloc[0])
        return {s: f"step {order.index(s) + 1}" for s in sets if s in order}
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
    if v.protocol == MULTI_DATASET:
        st.info("A multi-dataset stream has no target or control sets to trade off: its "
                f"datasets' accuracy after every step is on the {MATRIX_PAGE} page.")
        return
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
    if v.protocol == MULTI_DATASET:  # over datasets, not over one eval set's sessions
        for group in chosen:
            of = tables.multi_dataset_runs(runs[runs["group"] == group])
            datasets, matrix = tables.mtil_matrix(of)
            if matrix:
                show_figure(figures.dataset_heatmap(datasets, matrix, group,
                                                    seeds=int(of["seed"].nunique())),
                            f"preset-matrix-{chosen.index(group)}")
        return
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


def matrix_page(v: View) -> None:
    """A multi-dataset stream as ZSCL's Table 1 (Zheng et al., ICCV 2023): the accuracy matrix
    of a preset (mean over seeds) or of one run, and beneath it Transfer, Avg and Last per
    dataset and their means, beside the zero-shot row and the scenario's reported numbers."""
    st.header(MATRIX_PAGE)
    runs = tables.multi_dataset_runs(v.runs)
    if v.protocol != MULTI_DATASET or runs.empty:
        others = tables.options(tables.multi_dataset_runs(v.data.runs), "scenario")
        st.info("The matrix view is for multi-dataset scenarios (MTIL); pick one in the "
                "sidebar" + (f": {', '.join(others)}." if others else "."))
        return
    if tables.is_proxy(v.f.backbone):
        st.info(PROXY_CAVEAT)
    runs = tables.in_ranking_order(runs, v.table)
    groups = list(dict.fromkeys(runs["group"]))
    seeds = runs.groupby("group")["seed"].nunique()
    labels = {f"preset:{g}": f"{g} (mean over {seeds[g]} seed{'' if seeds[g] == 1 else 's'})"
              for g in groups}
    labels.update({f"run:{i}": label for i, label in tables.run_labels(runs).items()})
    options = list(labels)
    url_state.restore("matrix_of", options[0], options)
    chosen = st.selectbox("Preset or run", options, key="matrix_of", format_func=labels.get,
                          help="a preset's matrix is the mean over its seeds (per seed first)")
    kind, value = chosen.split(":", 1)
    picked = runs[runs["group"] == value] if kind == "preset" else runs[runs["id"] == value]
    name = value if kind == "preset" else labels[chosen]
    datasets, matrix = tables.mtil_matrix(picked)
    show_figure(figures.dataset_heatmap(datasets, matrix, name, seeds=int(
        picked["seed"].nunique()) if kind == "preset" else None), "mtil-matrix")
    st.subheader("Transfer, Avg and Last per dataset")
    rows = {"zero-shot": tables.zero_shot_scores(matrix), name: tables.mtil_scores(picked,
                                                                               datasets)}
    breakdown = tables.mtil_breakdown(datasets, rows, v.reported)
    st.dataframe(breakdown, hide_index=True, height=HEADER_PX + ROW_PX * len(breakdown) + 3)
    st.caption("In %. Transfer: a dataset's accuracy averaged over the steps before it is "
               "trained (none for the first; the mean is over datasets 2..T); Avg: averaged "
               "over every step; Last: after the last step. The zero-shot row reads the "
               "matrix's top row. Reported rows are published means on the backbone they "
               "name (their papers' per-dataset values are not held).")


MATRIX_PAGE = "Accuracy matrix (multi-dataset)"

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
# Pages that join PAGES where the store holds runs they draw (a multi-dataset stream's matrix).
MULTI_DATASET_PAGES: dict[str, Callable[[View], None]] = {MATRIX_PAGE: matrix_page}


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
    if not tables.multi_dataset_runs(data.runs).empty:
        pages = {**pages, **MULTI_DATASET_PAGES}
    published, problems = load_published(tuple(published_arguments(argv)))
    page, view = sidebar(data, list(pages), db, published)
    for problem in problems:  # the other files' rows are shown
        st.sidebar.error(f"Published numbers left out: {problem}")
    pages[page](view)
    url_state.publish()


if __name__ == "__main__":  # `streamlit run` (and AppTest) run this file as __main__
    main(sys.argv[1:])
