"""Leaderboard tables and figures: pure functions over a store seeded with synthetic runs
(including failed and running ones, which must never be counted), and read-only opening."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

import pandas as pd
import pytest
from leaderboard_seed import old_schema_store, seed_store
from sqlalchemy import create_engine, text

from clbench.leaderboard_app import tables
from clbench.leaderboard_app.data import StoreProblem, load, open_store
from clbench.metrics import METRICS
from clbench.store import StoreError
from clbench.store.location import read_only_url

# presets run on fewer seeds than required shown, as the numbers below check every preset
FOUR_SHOT = tables.Filters(scenario="syn-4shot", backbone="ViT-B-16@openai", show_few_seeds=True)
# what a user sees first: the seed rule on (3 seeds, the default every synthetic run declares)
FOUR_SHOT_DEFAULT = tables.Filters(scenario="syn-4shot", backbone="ViT-B-16@openai")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    path = tmp_path_factory.mktemp("lb") / "results.db"
    ids = seed_store(path)
    return path, ids


@pytest.fixture(scope="module")
def data(seeded):
    path, _ = seeded
    store = open_store(str(path))
    yield load(store)
    store.close()


def _row(table: pd.DataFrame, group: str) -> pd.Series:
    rows = table[table["group"] == group]
    assert len(rows) == 1, f"{group}: {len(rows)} rows in {table['group'].tolist()}"
    return rows.iloc[0]


def test_only_completed_runs_are_loaded(data, seeded):
    _, ids = seeded
    assert sorted(data.runs["id"]) == sorted(ids["completed"])
    assert data.other_statuses == {"failed": 2, "running": 1}
    assert set(data.evals["run_id"]) == set(ids["completed"])
    assert set(data.sessions["run_id"]) == set(ids["completed"])
    assert "gamma" not in set(data.runs["strategy"])


def test_shots_and_presets_are_derived(data):
    runs = data.runs.set_index("id")
    assert sorted(runs["shots"].unique().tolist()) == [4, 8]
    # presets are told apart within a scenario: the 8-shot alpha is alone in its own
    assert set(runs["group"]) == {"alpha (lr=0.0001)", "alpha (lr=0.001)", "beta", "alpha"}
    assert runs["clean"].sum() == len(runs) - 1  # the one dirty beta run


def test_leaderboard_rows_means_and_seed_counts(data):
    table = tables.leaderboard(data.runs, FOUR_SHOT, rank_by="final_accuracy")
    assert table["group"].tolist() == ["alpha (lr=0.0001)", "alpha (lr=0.001)", "beta",
                                       tables.ZERO_SHOT]
    alpha = _row(table, "alpha (lr=0.0001)")
    # the failed alpha seed 3 is not counted: 3 seeds, final = 10 + 50 + {0, 1, 2}
    assert alpha["seeds"] == 3
    assert alpha["final_accuracy"] == pytest.approx(61.0)
    # 95% CI of the mean of 3 seeds with std 1: t(0.975, 2) / sqrt(3)
    assert alpha["final_accuracy ±"] == pytest.approx(4.302653 / 3 ** 0.5)
    assert alpha["target_gain"] == pytest.approx(50.0)
    assert alpha["control:ctrl-a:change"] == pytest.approx(-10.0)
    assert alpha["control:ctrl-b:final"] == pytest.approx(50.0)
    assert alpha["forgetting"] == pytest.approx(5.0)
    assert alpha["trainable_percent"] == pytest.approx(1.0)
    assert alpha["time_per_session_s"] == pytest.approx(3.0)
    single = _row(table, "alpha (lr=0.001)")
    assert single["seeds"] == 1 and pd.isna(single["final_accuracy ±"])


def test_default_ranking_is_the_balanced_score(data):
    """Target change + mean control change: beta gains 20 target points but loses 30 on each
    control, so it ranks below the zero-shot reference, which a ranking by final accuracy
    hides."""
    table = tables.leaderboard(data.runs, FOUR_SHOT)
    assert table["group"].tolist() == ["alpha (lr=0.0001)", "alpha (lr=0.001)",
                                       tables.ZERO_SHOT, "beta"]
    assert _row(table, "alpha (lr=0.0001)")["balanced"] == pytest.approx(50.0 - 10.0)
    assert _row(table, "beta")["balanced"] == pytest.approx(20.0 - 30.0)
    assert _row(table, tables.ZERO_SHOT)["balanced"] == 0
    assert tables.metric_columns([])[0].name == tables.DEFAULT_RANK == "balanced"


def test_zero_shot_reference_row_is_always_there(data):
    table = tables.leaderboard(data.runs, FOUR_SHOT)
    zero = _row(table, tables.ZERO_SHOT)
    # session-0 accuracies of every 4-shot run: per seed 10 + {0, 1, 2}
    assert zero["final_accuracy"] == pytest.approx(11.0)
    assert zero["seeds"] == 3
    assert zero["control:ctrl-a:final"] == pytest.approx(80.0)
    assert zero["target_gain"] == 0 and zero["forgetting"] == 0
    nothing = tables.leaderboard(data.runs, tables.Filters(
        scenario="syn-4shot", backbone="ViT-B-16@openai", strategies=["no-such"]))
    assert nothing["group"].tolist() == [tables.ZERO_SHOT]
    assert nothing.iloc[0]["final_accuracy"] == pytest.approx(11.0)


def test_presets_short_of_seeds_are_hidden_by_default_and_marked_when_shown(data):
    hidden = tables.leaderboard(data.runs, FOUR_SHOT_DEFAULT)
    assert sorted(hidden["group"]) == sorted(["alpha (lr=0.0001)", "beta", tables.ZERO_SHOT])
    assert not hidden["few_seeds"].any()
    short = tables.few_seed_groups(data.runs, FOUR_SHOT_DEFAULT)
    assert short.to_dict("index") == {"alpha (lr=0.001)": {"seeds": 1, "seeds_required": 3}}
    # the same rule on every page: the runs the plots draw come from filter_runs
    assert "alpha (lr=0.001)" not in set(tables.filter_runs(data.runs, FOUR_SHOT_DEFAULT)["group"])
    shown = tables.leaderboard(data.runs, FOUR_SHOT).set_index("group")
    assert shown.loc["alpha (lr=0.001)", "few_seeds"]
    assert pd.isna(shown.loc["alpha (lr=0.001)", "final_accuracy ±"])  # no interval of 1 seed
    # a scenario asking for 4 seeds hides the 3-seed presets too; the reference row stays
    stricter = data.runs.assign(seeds_required=4)
    assert tables.leaderboard(stricter, FOUR_SHOT_DEFAULT)["group"].tolist() == [
        tables.ZERO_SHOT]


def test_shown_table_marks_best_ci_and_short_seeds(data):
    table = tables.leaderboard(data.runs, FOUR_SHOT)
    cols = tables.metric_columns(["ctrl-a", "ctrl-b"])
    html = tables.styled(table, cols).to_html()
    row = {g: i for i, g in enumerate(table["group"])}
    cell = _shown_cells(html)
    balanced = table.columns.get_loc("balanced")
    # alpha lr=1e-4: balanced 40 on every seed (interval 0), the best method: starred
    assert cell[(row["alpha (lr=0.0001)"], balanced)] == "40.0 ± 0.0 ★"
    assert cell[(row["alpha (lr=0.001)"], balanced)] == "25.0"  # one seed: no interval
    assert "★" not in cell[(row[tables.ZERO_SHOT], balanced)]  # references are never "best"
    assert cell[(row["alpha (lr=0.001)"], table.columns.get_loc("seeds"))] == "1 of 3 ⚠"
    styles = tables.styled(table, cols)._compute().ctx
    best, worst = styles[(row["alpha (lr=0.0001)"], balanced)], styles[(row["beta"], balanced)]
    assert "46, 160, 67" in str(best) and "214, 69, 65" in str(worst)  # green best, red worst


def _shown_cells(html: str) -> dict[tuple[int, int], str]:
    """(row, column) -> the text a Styler's HTML shows in that body cell."""
    import re

    cells = re.findall(r'<td id="T_\w+_row(\d+)_col(\d+)"[^>]*>([^<]*)</td>', html)
    return {(int(r), int(c)): text.strip() for r, c, text in cells}


def test_ranking_follows_metric_direction(data):
    assert METRICS["forgetting"].higher_is_better is False
    by_forgetting = tables.leaderboard(data.runs, FOUR_SHOT, rank_by="forgetting")
    assert by_forgetting["group"].tolist() == [tables.ZERO_SHOT, "beta", "alpha (lr=0.001)",
                                               "alpha (lr=0.0001)"]
    # the zero-shot row is placed, never numbered
    assert by_forgetting["rank"].tolist() == [pd.NA, 1, 2, 3]
    by_control = tables.leaderboard(data.runs, FOUR_SHOT, rank_by="control:ctrl-a:change")
    assert by_control["group"].iloc[0] == tables.ZERO_SHOT  # no change beats any drop
    assert by_control["group"].iloc[-1] == "beta"
    # The headers the app gives these columns (leaderboard_page: NumberColumn(c.header)).
    headers = {c.name: c.header for c in tables.metric_columns(["ctrl-a", "ctrl-b"])}
    assert headers["forgetting"].endswith("↓") and headers["final_accuracy"].endswith("↑")


@pytest.mark.parametrize(("filters", "groups"), [
    (tables.Filters(scenario="syn-8shot", backbone="ViT-B-16@openai", show_few_seeds=True),
     ["alpha"]),  # alone in its scenario: no preset label
    (tables.Filters(scenario="syn-4shot", shots=[8]), []),
    (tables.Filters(scenario="syn-4shot", strategies=["beta"]), ["beta"]),
    (tables.Filters(scenario="syn-4shot", since=date.today() + timedelta(days=1)), []),
    (tables.Filters(scenario="syn-4shot", until=date.today(), show_few_seeds=True),
     ["alpha (lr=0.0001)", "alpha (lr=0.001)", "beta"]),
    (tables.Filters(scenario="syn-4shot", until=date.today()), ["alpha (lr=0.0001)", "beta"]),
])
def test_filters(data, filters, groups):
    table = tables.leaderboard(data.runs, filters)
    assert sorted(g for g in table["group"] if g != tables.ZERO_SHOT) == groups
    assert tables.ZERO_SHOT in set(table["group"])


def test_commit_filter(data):
    clean = tables.leaderboard(data.runs, tables.Filters(scenario="syn-4shot", commit="clean",
                                                         show_few_seeds=True))
    assert _row(clean, "beta")["seeds"] == 2
    # seeds are counted among the runs the other filters keep: 2 clean beta seeds are too few
    assert "beta" not in set(tables.leaderboard(
        data.runs, tables.Filters(scenario="syn-4shot", commit="clean"))["group"])
    dirty = tables.leaderboard(data.runs, tables.Filters(scenario="syn-4shot", commit="dirty",
                                                         show_few_seeds=True))
    assert _row(dirty, "beta")["seeds"] == 1
    assert set(dirty["group"]) == {"beta", tables.ZERO_SHOT}


def test_csv_export_has_directions_and_rows(data):
    table = tables.leaderboard(data.runs, FOUR_SHOT)
    csv = tables.export_csv(table, ["ctrl-a", "ctrl-b"]).decode()
    lines = csv.strip().splitlines()
    assert len(lines) == 1 + len(table)
    assert "forgetting (points, lower is better)" in lines[0]
    assert "final target accuracy (%, higher is better)" in lines[0]
    assert "ctrl-a change vs zero-shot (points, higher is better)" in lines[0]
    assert "ctrl-a accuracy (%, higher is better)" in lines[0]
    # the label is the declaration's ("trainable parameters"), its unit starts with "%"
    assert "trainable parameters (% of the vision encoder, lower is better)" in lines[0]
    assert "(%…" not in lines[0] and "% (%" not in lines[0]


def test_run_detail_and_compare(data, seeded):
    path, ids = seeded
    store = open_store(str(path))
    runs = [store.get_run(i) for i in ids["completed"][:2]]
    store.close()
    prov = tables.provenance(runs[0])
    assert prov["git_sha"] == "0" * 40 and len(prov["sample_ids_hash"]) == 16
    sessions = tables.sessions_table(runs[0])
    assert sessions["samples"].tolist() == [8, 8, 8]
    assert sessions["active_blocks"].tolist() == [1, 2, 3]
    compared = tables.compare_runs(runs, ["first", "second"])
    assert list(compared.columns) == ["differs", "first", "second"]
    assert compared.loc["seed", "differs"] and not compared.loc["strategy", "differs"]
    assert compared["differs"].iloc[0]  # what differs is listed first
    # accuracies in %, as on every other page: alpha seed 0 ends at 10 + 50 = 60 %
    assert float(compared.loc["summary.final_accuracy", "first"]) == pytest.approx(60.0)
    assert float(compared.loc["summary.controls.ctrl-a.change", "first"]) == pytest.approx(-10)
    settings = tables.key_values(runs[0]["config"]).set_index("key")["value"]
    assert settings["strategy.name"] == "alpha"


def test_presets_side_by_side_and_drawn_groups(data):
    table = tables.leaderboard(data.runs, FOUR_SHOT)
    side = tables.presets_side_by_side(table, ["beta", "alpha (lr=0.0001)"], ["ctrl-a"])
    assert list(side.columns) == ["beta", "alpha (lr=0.0001)", tables.ZERO_SHOT]
    assert side.loc["balanced ↑ (points)", "beta"].startswith("-10.0 ± ")
    assert side.loc["seeds", "alpha (lr=0.0001)"] == "3"
    assert tables.drawn_groups(table, 1, []) == ["alpha (lr=0.0001)"]
    assert tables.drawn_groups(table, 1, ["beta"]) == ["alpha (lr=0.0001)", "beta"]
    ordered = tables.in_ranking_order(tables.filter_runs(data.runs, FOUR_SHOT), table)
    assert ordered["group"].tolist()[:3] == ["alpha (lr=0.0001)"] * 3  # the best preset first
    assert ordered["seed"].tolist()[:3] == [0, 1, 2]
    assert ordered["group"].iloc[-1] == "beta"  # ranked below zero-shot, last


def test_bulk_reads_match_get_run(seeded):
    path, ids = seeded
    store = open_store(str(path))
    run = store.get_run(ids["completed"][0])
    evals = [e for e in store.evaluations_of(["completed"]) if e["run_id"] == run["id"]]
    assert {e["run_id"] for e in store.evaluations_of(["running"])} == set(ids["running"])
    assert sorted((e["after_session"], e["eval_set"], e["subset"], e["accuracy"])
                  for e in evals) == sorted(
        (e["after_session"], e["eval_set"], e["subset"], e["accuracy"])
        for e in run["evaluations"])
    sessions = [s for s in store.session_overview() if s["run_id"] == run["id"]]
    assert [(s["n_classes"], s["n_samples"]) for s in sorted(sessions, key=lambda s: s["index"])
            ] == [(len(s["classes"]), len(s["sample_ids"])) for s in run["sessions"]]
    assert len(store.runs_overview(["running"])) == 1
    store.close()


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_app_reads_never_write(seeded):
    path, ids = seeded
    before = _digest(path)
    store = open_store(str(path))
    load(store)
    store.list_runs()  # would mark the dead running run failed if the store were writable
    store.get_run(ids["running"][0])
    store.close()
    assert _digest(path) == before
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        status = conn.execute(text("SELECT status FROM runs WHERE id = :id"),
                              {"id": ids["running"][0]}).scalar_one()
    engine.dispose()
    assert status == "running"
    store = open_store(str(path))
    assert store.read_only and store.shown_as == str(path)
    with pytest.raises(StoreError, match="opened read-only"):  # the store refuses writes
        store.mark_stale_runs()
    with store.engine.connect() as conn, pytest.raises(Exception, match="readonly"):
        conn.exec_driver_sql("UPDATE runs SET status = 'failed'")  # so does SQLite itself
    store.close()
    assert _digest(path) == before


def test_read_only_url():
    assert read_only_url("sqlite:////tmp/x.db") == "sqlite:///file:/tmp/x.db?mode=ro&uri=true"
    assert read_only_url("postgresql://h/db") == "postgresql://h/db"


def test_missing_file_is_not_created(tmp_path):
    path = tmp_path / "none.db"
    with pytest.raises(StoreProblem, match="no results database") as info:
        open_store(str(path))
    assert "clbench run" in info.value.todo
    assert not path.exists()


def test_old_schema_explains(tmp_path):
    path = old_schema_store(tmp_path / "old.db")
    with pytest.raises(StoreProblem, match="older than") as info:
        open_store(str(path))
    assert "another schema" in info.value.title and "clbench app --db" in info.value.todo


def test_unreachable_url_explains():
    with pytest.raises(StoreProblem) as info:
        open_store("postgresql+psycopg2://nobody@127.0.0.1:1/nowhere")
    assert info.value.title == "Cannot open the results database"
    assert "clbench app --db URL" in info.value.todo


def test_zeroshot_runs_make_no_second_zero_shot_row(data):
    runs = data.runs.copy()
    runs.loc[runs["strategy"] == "beta", "strategy"] = "zeroshot"
    table = tables.leaderboard(runs, FOUR_SHOT)
    assert "beta" not in table["group"].tolist()
    assert table["group"].tolist().count(tables.ZERO_SHOT) == 1
    assert "average_accuracy" not in table  # the last-row mean repeats the final accuracy
    assert {"average_incremental_accuracy", "plasticity"} <= set(table.columns)


def test_every_column_has_a_tooltip_with_its_definition_unit_and_direction():
    for column in tables.metric_columns(["ctrl-a"]):
        tip = column.tooltip
        assert not tip.startswith(" (") and len(tip) > 30, (column.name, tip)
        assert tip.endswith(f"({column.unit_text}; "
                            f"{'higher' if column.higher_is_better else 'lower'} is better)")
    forgetting = next(c for c in tables.metric_columns([]) if c.name == "forgetting")
    assert forgetting.tooltip.endswith("(points; lower is better)")


def test_third_party_strategies_are_marked_and_filtered(tmp_path, capsys):
    from leaderboard_synthetic import Spec, add_run

    from clbench.cli.main import main
    from clbench.store import Store

    path = tmp_path / "plugins.db"
    with Store(f"sqlite:///{path}") as store:
        for seed in (0, 1, 2):
            add_run(store, Spec("wiseft", gain=0.4, drop=0.05, third_party=True), seed)
            add_run(store, Spec("fft", gain=0.5, drop=0.3), seed)
    store = open_store(str(path))
    runs = load(store).runs
    store.close()
    assert runs.groupby("strategy")["third_party"].all().to_dict() == {"fft": False,
                                                                       "wiseft": True}
    f = tables.Filters(scenario="syn-4shot")
    table = tables.leaderboard(runs, f)
    assert _row(table, "wiseft")["third_party"] and not _row(table, "fft")["third_party"]
    html = tables.styled(table, tables.metric_columns(["ctrl-a", "ctrl-b"])).to_html()
    assert "wiseft †" in html and "fft †" not in html
    only = {o: sorted(g for g in tables.leaderboard(
        runs, tables.Filters(scenario="syn-4shot", origin=o))["group"] if g != tables.ZERO_SHOT)
        for o in ("built-in", "third-party")}
    assert only == {"built-in": ["fft"], "third-party": ["wiseft"]}
    # the command line says so too
    assert main(["runs", "--db", str(path)]) == 0
    assert "wiseft (third-party: clbench-synthetic-plugin 1.0)" in capsys.readouterr().out
    assert main(["runs", "--json", "--db", str(path)]) == 0
    import json

    listed = json.loads(capsys.readouterr().out)
    assert {r["strategy"]: r["source"] for r in listed} == {"wiseft": "third-party",
                                                            "fft": "built-in"}
    wiseft = next(r["id"] for r in listed if r["strategy"] == "wiseft")
    assert main(["show", wiseft, "--db", str(path)]) == 0
    assert "strategy wiseft (third-party: clbench-synthetic-plugin 1.0)" in \
        capsys.readouterr().out
    assert main(["show", wiseft, "--json", "--db", str(path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["provenance"]["strategy_source"]["distribution"] == "clbench-synthetic-plugin"


def test_verified_runs_are_marked_and_filtered(tmp_path):
    from leaderboard_synthetic import Spec, add_run

    from clbench.store import Store

    path = tmp_path / "verified.db"
    with Store(f"sqlite:///{path}") as store:
        checked = [add_run(store, Spec("lora", gain=0.4, drop=0.05), s) for s in (0, 1, 2)]
        for seed in (0, 1, 2):
            add_run(store, Spec("fft", gain=0.5, drop=0.3), seed)
        store.add_verification(checked[0], reproduction_id=None, verifier="bo", host="elsewhere",
                               max_difference=0.1, tolerance=0.5, within_tolerance=True,
                               independent=True)
        # reproduced on the same host only, or outside the tolerance: not verified
        store.add_verification(checked[1], reproduction_id=None, verifier="bo", host="here",
                               max_difference=0.0, tolerance=0.5, within_tolerance=True,
                               independent=False)
    store = open_store(str(path))
    runs = load(store).runs
    store.close()
    assert set(runs.loc[runs["verified"], "id"]) == {checked[0]}
    table = tables.leaderboard(runs, tables.Filters(scenario="syn-4shot"))
    assert _row(table, "lora")["verified"] and not _row(table, "fft")["verified"]
    html = tables.styled(table, tables.metric_columns(["ctrl-a", "ctrl-b"])).to_html()
    assert "lora ✓" in html and "fft ✓" not in html
    # verified only: lora's one verified seed is too few for the 3-seed rule unless shown
    only = tables.leaderboard(runs, tables.Filters(scenario="syn-4shot", verified_only=True,
                                                   show_few_seeds=True))
    assert sorted(g for g in only["group"] if g != tables.ZERO_SHOT) == ["lora"]
    side = tables.presets_side_by_side(table, ["lora"], ["ctrl-a"])
    assert side.loc["verified", "lora"] == "yes" and side.loc["submitted by", "lora"] == ""
