"""One declaration per metric (`clbench.metrics.METRICS`): every view shows only declared
metrics, and CONTRIBUTING's traces "add a metric" and "add a leaderboard page" done once each.

The checker is `clbench.metrics.undeclared`: given the names a view shows (summary keys,
leaderboard columns, labels in the report or the CSV headers), it returns those no declaration
covers. Each test below reads what one view really shows and feeds it to the checker, and feeds
it a made-up name as well, so that the check is seen to fail where it should."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from leaderboard_seed import TRADEOFF_ORDER, seed_tradeoff_store
from leaderboard_synthetic import CONTROLS, SEED_STEP, ZERO_TARGET, Spec, add_run
from test_metrics import evaluations

from clbench import metrics
from clbench.cli.main import main
from clbench.leaderboard_app import tables
from clbench.leaderboard_app.data import load, open_store
from clbench.metrics import (
    LEADERBOARD,
    METRICS,
    PERCENT,
    REPORT,
    SUMMARY,
    Metric,
    shown_in,
    stored_value,
    summarize,
    summary_keys,
    undeclared,
)
from clbench.run.report import format_summary
from clbench.store import Store

FOUR_SHOT = tables.Filters(scenario="syn-4shot", show_few_seeds=True)
# what a leaderboard row (and so its CSV) holds besides metrics
ROW_FACTS = {"rank", "strategy", "preset", "group", "seeds", "runs", "seeds_required",
             "few_seeds", "third_party", "verified", *tables.SUBMITTER_KEYS}
# the run report's lines that are not metrics
REPORT_FACTS = (r"run \S+ completed in \d+s", r"target \S+(, \d+ sessions)?", r"tuning run: .*",
                r"session checkpoints: .*", r"details: clbench show \S+")


def report_names(text: str) -> list[str]:
    """What each metric line of a run report names ("label: value" -> label; a line in no
    known form is returned whole, so the checker reports it)."""
    names = []
    for line in text.strip().splitlines():
        line = line.strip()
        if not any(re.fullmatch(p, line) for p in REPORT_FACTS):
            names.append(line.split(":", 1)[0])
    return names


def csv_names(data: bytes) -> list[str]:
    """The label each metric header of a leaderboard CSV names ("<label> (<unit>, ...)",
    "<label> 95% CI half-width over seeds (<unit>)"), row facts left out."""
    header = next(csv.reader(io.StringIO(data.decode())))
    names = []
    for h in header:
        if h not in ROW_FACTS:
            match = re.fullmatch(r"(.*?)(?: 95% CI half-width over seeds)? \([^()]*\)", h)
            names.append(match.group(1) if match else h)
    return names


def table_names(table) -> list[str]:
    """The metric columns of a leaderboard table (intervals as their metric)."""
    return list(dict.fromkeys(c.removesuffix(" ±") for c in table.columns if c not in ROW_FACTS))


def full_summary() -> dict:
    summary = summarize(evaluations(), "t", ["c1", "c2"], 3)
    summary["trainable_percent"] = 1.5  # what the runner adds
    return summary


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """A store of three 3-seed presets (no training) and its loaded leaderboard."""
    path = seed_tradeoff_store(tmp_path_factory.mktemp("decl") / "results.db")
    store = open_store(str(path))
    data = load(store)
    store.close()
    return path, data


def test_the_checker_reports_an_undeclared_name():
    shown = ["final_accuracy", "control:ctrl-a:change", "ctrl-a Δ", "forgetting",
             "made_up_score"]
    assert undeclared(shown, ["ctrl-a"]) == ["made_up_score"]
    # a control set's label needs that set's name to be recognised
    assert undeclared(["ctrl-a accuracy"], []) == ["ctrl-a accuracy"]


def test_the_drift_of_issue_25_is_gone():
    """`zero_shot_accuracy` was read by the leaderboard without a declaration, `transfer` was
    declared but no column; every key a summary holds is declared, and says where it shows."""
    summary = full_summary()
    assert undeclared(summary_keys(summary), ["c1", "c2"]) == []
    assert undeclared(summary_keys({**summary, "made_up": 1.0})) == ["made_up"]
    assert SUMMARY in METRICS["zero_shot_accuracy"].shown
    assert LEADERBOARD in METRICS["transfer"].shown
    assert "transfer" in {c.name for c in tables.metric_columns([])}
    # everything summarize computes is declared as computed, and nothing else
    computed = {m.name for m in METRICS.values() if m.compute is not None}
    assert {k for k in summary_keys(summary) if not k.startswith("control:")} == \
        computed - {"control:final", "control:change", "control:zero_shot"} \
        | {"trainable_percent"}


def test_what_the_code_writes_into_a_summary_is_declared_or_a_fact():
    """Keys set outside `summarize` (the runner's `summary["key"] = ...`), read from the source
    as the import-graph test reads imports: each is a declared metric or one of RUN_FACTS."""
    from pathlib import Path

    root = Path(metrics.__file__).resolve().parent
    written = {key for path in root.rglob("*.py")
               for key in re.findall(r"""summary\[["'](\w+)["']\]\s*=[^=]""", path.read_text())}
    assert "trainable_percent" in written and "evaluated_on" in written  # the runner's
    assert [k for k in written if k not in metrics.RUN_FACTS and k not in METRICS] == []


def test_the_run_report_shows_only_declared_metrics():
    summary = full_summary()
    text = format_summary("0123456789abcdef", summary, 12.0)
    names = report_names(text)
    assert undeclared(names, ["c1", "c2"]) == []
    # every metric declared for the report that the run has is there, in declaration order; the
    # other protocols' metrics (None for a class-incremental run) are left out
    expected = [m.label_for(c) for m, c in shown_in(REPORT, ["c1", "c2"])
                if stored_value(m, summary, c) is not None]
    assert names == expected
    other_protocols = {"mtil_transfer", "mtil_avg", "mtil_last", "mtil_zero_shot",
                       "mtil_zero_shot_transfer", "base_accuracy", "new_accuracy",
                       "harmonic_mean"}
    assert {m.name for m, c in shown_in(REPORT, ["c1", "c2"])
            if m.label_for(c) not in names} == other_protocols
    assert "  balanced score (target Δ + mean control Δ):" in text and "+60.0 points" in text
    # a line someone writes into the report by hand is caught
    assert undeclared(report_names(text + "\n  sneaky score: 3%"), ["c1", "c2"]) == [
        "sneaky score"]
    assert undeclared(report_names(text + "\n  sneaky 3%"), ["c1", "c2"]) == ["sneaky 3%"]


def test_show_json_holds_only_declared_metrics(board, capsys):
    path, data = board
    run_id = data.runs["id"].iloc[0]
    assert main(["show", run_id, "--json", "--db", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    keys = summary_keys(summary)
    assert undeclared(keys, list(CONTROLS)) == []
    assert {"balanced", "zero_shot_accuracy", "transfer", "control:ctrl-a:change"} <= set(keys)


def test_leaderboard_columns_csv_and_headline_show_only_declared_metrics(board):
    path, data = board
    controls = list(CONTROLS)
    table = tables.leaderboard(data.runs, FOUR_SHOT)
    assert undeclared([c.name for c in tables.metric_columns(controls)], controls) == []
    assert undeclared(table_names(table), controls) == []
    names = csv_names(tables.export_csv(table, controls))
    assert undeclared(names, controls) == []
    assert "final target accuracy" in names and "ctrl-b change vs zero-shot" in names
    # a column added to the table by hand reaches the CSV undeclared: caught
    sneaky = table.assign(sneaky_score=1.0)
    assert undeclared(csv_names(tables.export_csv(sneaky, controls)), controls) == [
        "sneaky_score"]
    assert undeclared(table_names(sneaky), controls) == ["sneaky_score"]
    store = Store(f"sqlite:///{path}", create=False)
    run = store.get_run(data.runs["id"].iloc[0])
    store.close()
    assert undeclared(tables.headline(run), controls) == []
    assert undeclared([c.split(" (")[0] for c in tables.runs_list(data.runs).columns
                       if c not in ("preset", "seed", "run", "created", "code", "run s")]) == []


def test_a_summary_stored_before_newer_metrics_still_displays(tmp_path):
    """Runs stored by an older clbench lack the newer keys: the report and the leaderboard
    show what they have, and the balanced score is backfilled by its declaration."""
    old = {"target": "syn", "sessions": 3, "final_accuracy": 0.4, "zero_shot_accuracy": 0.1,
           "target_gain": 0.3, "average_accuracy": 0.4, "forgetting": 0.05, "bwt": -0.05,
           "controls": {"ctrl-a": {"final": 0.7, "zero_shot": 0.8, "change": -0.1}},
           "trainable_percent": 1.0}
    text = format_summary("0123456789abcdef", old, 1.0)
    assert "balanced score (target Δ + mean control Δ): +20.0 points" in " ".join(text.split())
    assert "plasticity" not in text  # not recorded then: left out, not printed as unknown
    path = tmp_path / "old.db"
    with Store(f"sqlite:///{path}") as store:
        run_id = add_run(store, Spec("alpha", gain=0.3, drop=0.1), 0, status="running")
        store.complete_run(run_id, summary=old, total_time_s=1.0)
    store = open_store(str(path))
    runs = load(store).runs
    store.close()
    assert runs.loc[0, "balanced"] == pytest.approx(0.2)
    assert runs.loc[0, "control:ctrl-a:change"] == pytest.approx(-0.1)
    table = tables.leaderboard(runs, FOUR_SHOT)
    assert table.set_index("group").loc["alpha", "balanced"] == pytest.approx(20.0)


@pytest.mark.parametrize("wrong", [
    {"compute": lambda run: 0.0, "shown": frozenset({REPORT})},  # computed but not stored
    {"source": "", "shown": frozenset({SUMMARY})},  # neither computed nor set by anyone
    {"label": "score: new", "compute": lambda run: 0.0, "shown": frozenset({SUMMARY})},
    {"per": metrics.SESSION, "compute": lambda run: [], "shown": frozenset({SUMMARY,
                                                                            LEADERBOARD})},
])
def test_a_declaration_that_cannot_be_shown_is_refused(wrong):
    fields = {"name": "new", "label": "new score", "higher_is_better": True, "unit": PERCENT,
              "definition": "a score", "source": "somewhere", **wrong}
    if "compute" in wrong:
        fields.pop("source")
    with pytest.raises(ValueError, match="metric 'new'"):
        Metric(**fields)


# The worked trace "add a metric": one declaration, and it is in the run report, in
# `clbench show --json`'s summary of a run stored after it, in the leaderboard's columns with
# its tooltip, in the CSV headers and in the app's column chooser.
FIRST_SESSION = Metric(
    name="first_session_accuracy", label="target accuracy after session 1", short="S1 acc.",
    higher_is_better=True, unit=PERCENT, definition="target accuracy over all its classes "
    "after the first session", compute=lambda run: run.accuracy(1),
    at_zero_shot="zero_shot_accuracy", shown=frozenset({SUMMARY, REPORT, LEADERBOARD}))


def test_adding_a_metric_is_one_declaration(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(METRICS, FIRST_SESSION.name, FIRST_SESSION)  # the one declaration
    spec = Spec("alpha", gain=0.3, drop=0.1)
    path = tmp_path / "results.db"
    with Store(f"sqlite:///{path}") as store:  # stored after it was declared
        ids = [add_run(store, spec, seed) for seed in (0, 1, 2)]
    after_one = ZERO_TARGET + spec.gain / spec.sessions  # the synthetic formula, seed 0

    assert main(["show", ids[0], "--json", "--db", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert summary["first_session_accuracy"] == pytest.approx(after_one)
    assert main(["show", ids[0], "--db", str(path)]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "syn % S1 S2 S3" in shown  # the matrix is the target's (the store lists ctrl-a first)
    assert f"target accuracy after session 1: {100 * after_one:.1f}%" in shown
    assert f"target accuracy after session 1: {100 * after_one:.1f}%" in " ".join(
        format_summary(ids[0], summary, 1.0).split())  # what `clbench run` prints

    column = next(c for c in tables.metric_columns(list(CONTROLS))
                  if c.name == "first_session_accuracy")
    assert column.header == "S1 acc. ↑"
    assert column.tooltip == ("target accuracy over all its classes after the first session "
                              "(%; higher is better)")
    store = open_store(str(path))
    runs = load(store).runs
    store.close()
    table = tables.leaderboard(runs, FOUR_SHOT).set_index("group")
    assert table.loc["alpha", "first_session_accuracy"] == pytest.approx(
        100 * (after_one + SEED_STEP))  # mean over seeds 0, 1, 2
    # the zero-shot row takes what the declaration names: the zero-shot accuracy
    assert table.loc[tables.ZERO_SHOT, "first_session_accuracy"] == pytest.approx(
        100 * (ZERO_TARGET + SEED_STEP))
    header = next(csv.reader(io.StringIO(tables.export_csv(
        table.reset_index(), list(CONTROLS)).decode())))
    assert "target accuracy after session 1 (%, higher is better)" in header

    from streamlit.testing.v1 import AppTest

    from clbench.cli.app import app_script

    monkeypatch.setenv("CLBENCH_DB", str(path))
    at = AppTest.from_file(str(app_script()), default_timeout=60)
    at.query_params["columns"] = "first_session_accuracy"
    at.run()
    assert not at.exception, at.exception
    assert at.multiselect(key="columns").value == ["first_session_accuracy"]
    board = at.dataframe[0]
    assert "first_session_accuracy" in board.value.columns
    config = json.loads(board.proto.columns)  # st.column_config as the browser gets it
    assert config["first_session_accuracy"]["help"] == column.tooltip


# The worked trace "add a leaderboard page": a function of the sidebar's View and one entry in
# PAGES; here the entry is added for one app run, as a deployment (or a plugin) would.
PAGE_SCRIPT = """
import streamlit as st

from clbench.leaderboard_app import app


def best_preset_page(v):
    st.header("Best preset")
    st.metric("best preset", v.table.loc[v.table["rank"] == 1, "group"].iloc[0])


app.main([], pages={**app.PAGES, "Best preset": best_preset_page})
"""


def test_adding_a_leaderboard_page_is_one_entry(board, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from clbench.leaderboard_app.app import PAGES

    path, _ = board
    monkeypatch.setenv("CLBENCH_DB", str(path))
    at = AppTest.from_string(PAGE_SCRIPT, default_timeout=60)
    at.query_params["page"] = "Best preset"  # a link to the new page opens it
    at.run()
    assert not at.exception, at.exception
    assert at.sidebar.radio(key="page").options == [*PAGES, "Best preset"]
    assert at.header[0].value == "Best preset"
    assert at.metric[0].value == TRADEOFF_ORDER[0]  # ranked first by the balanced score
    at.sidebar.radio(key="page").set_value("Leaderboard").run()  # the others still draw
    assert not at.exception and at.header[0].value == "Leaderboard"
