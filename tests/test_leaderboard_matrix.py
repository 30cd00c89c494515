"""The leaderboard's multi-dataset (MTIL) view and its reported rows: the matrix, Transfer / Avg /
Last per dataset and the board's columns on a hand-computed 3-dataset matrix, published numbers
beside measured runs (marked, not ranked unless asked), and the page through Streamlit's AppTest.

Every run is written through the public Store API with the summary `clbench.metrics.summarize`
gives a multi-dataset stream, as the runner stores it. The matrix (fractions; row 0 = zero-shot,
row i = after training dataset i):

            d1    d2    d3
    0      .20   .50   .80
    1      .90   .40   .70
    2      .70   .90   .60
    3      .60   .80   .90

so, by ZSCL's definitions (Zheng et al., ICCV 2023): Transfer = [-, 40, 65] (mean 52.5), Avg =
[73.3, 70, 73.3] (mean 72.2), Last = [60, 80, 90] (mean 76.7); the zero-shot row reads row 0:
Transfer [-, 50, 80] (mean 65), Avg = Last = [20, 50, 80] (mean 50).
"""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
from leaderboard_synthetic import Spec, add_run

from clbench.leaderboard_app import figures, tables
from clbench.leaderboard_app.data import load, open_store
from clbench.metrics import MULTI_DATASET, summarize
from clbench.published import Published
from clbench.store import Store

SCENARIO = "syn-mtil"
DATASETS = ["d1", "d2", "d3"]
MATRIX = [[0.20, 0.50, 0.80], [0.90, 0.40, 0.70], [0.70, 0.90, 0.60], [0.60, 0.80, 0.90]]
MTIL = tables.Filters(scenario=SCENARIO)
# (strategy, lr, seed, added to every trained cell): alpha is the matrix on seed 0, +6 points on
# seed 1 and a second seed-0 run at +2 (per seed first: +1 and +6, so +3.5 over seeds, where a
# plain mean over the three runs would give +2.67); beta is 10 points below everywhere trained
RUNS = [("alpha", 0, 0.0), ("alpha", 1, 0.06), ("alpha", 0, 0.02), ("beta", 0, -0.10),
        ("beta", 1, -0.10), ("zeroshot", 0, None)]
ALPHA_SHIFT = 3.5


def shifted(shift: float | None) -> list[list[float]]:
    """MATRIX with `shift` added to the rows after training (None: the zero-shot model, whose
    every row is row 0)."""
    if shift is None:
        return [list(MATRIX[0]) for _ in MATRIX]
    return [list(MATRIX[0])] + [[round(v + shift, 6) for v in row] for row in MATRIX[1:]]


def add_mtil_run(store: Store, strategy: str, seed: int, matrix: list[list[float]]) -> str:
    """A completed multi-dataset run: one session per dataset, every dataset evaluated after
    every session and before any."""
    config = {"strategy": {"name": strategy}, "scenario": SCENARIO, "seed": seed,
              "training": {"lr": 1e-5}}
    run_id = store.create_run(
        strategy=strategy, strategy_config={}, scenario=SCENARIO,
        scenario_manifest_hash="synthetic", model_arch="proxy-vit-tiny", model_pretrained=None,
        model_checkpoint_sha256=None, seed=seed, config=config,
        config_hash=f"{strategy}-{seed}-{matrix[1][0]}", training_config={"lr": 1e-5},
        provenance={"git_sha": "0" * 40, "git_dirty": False, "packages": {}, "hardware": {}})
    rows = [{"after_session": i, "eval_set": name, "subset": "all", "accuracy": value, "n": 50}
            for i, row in enumerate(matrix) for name, value in zip(DATASETS, row)]
    for i, name in enumerate(DATASETS, start=1):
        store.add_session(run_id, index=i, classes=[f"{name}/a", f"{name}/b"],
                          sample_ids=[f"{name}/{seed}/{k}" for k in range(4)], train_time_s=1.0,
                          peak_memory_mb=10.0, trainable_params=1000, facts={})
    store.add_evaluations(run_id, rows)
    summary = summarize(rows, None, [], len(DATASETS), datasets=DATASETS, protocol=MULTI_DATASET)
    summary.update(trainable_percent=1.0, seeds_required=2)
    store.complete_run(run_id, summary=summary, total_time_s=3.0)
    return run_id


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("mtil") / "results.db"
    with Store(f"sqlite:///{path}") as store:
        for strategy, seed, shift in RUNS:
            add_mtil_run(store, strategy, seed, shifted(shift))
        add_run(store, Spec("alpha", gain=0.3, drop=0.1), 0)  # a class-incremental scenario
    return path


@pytest.fixture(scope="module")
def runs(store_path):
    store = open_store(str(store_path))
    frame = load(store).runs
    store.close()
    return frame


def published(method: str, metrics: dict[str, float], reference: bool = False) -> Published:
    return Published(method=method, paper="Someone et al. 2024", table="Table 1",
                     backbone="ViT-B-16@openai", scenario=SCENARIO, metrics=metrics,
                     source="https://example.org/paper", reference=reference)


REPORTED = [published("zero-shot", {"mtil_transfer": 69.4, "mtil_avg": 65.3, "mtil_last": 65.3},
                      reference=True),
            published("ZSCL", {"mtil_transfer": 68.1, "mtil_avg": 75.4, "mtil_last": 83.6}),
            published("Other", {"mtil_avg": 90.0}),
            Published(method="elsewhere", paper="p", table="t", backbone="b",
                      scenario="another-scenario", metrics={"mtil_avg": 99.0}, source="s")]


def test_matrix_and_scores_of_a_hand_computed_matrix(runs):
    alpha = runs[runs["group"] == "alpha"]
    datasets, matrix = tables.mtil_matrix(alpha)
    assert datasets == DATASETS
    assert matrix[0] == pytest.approx([20.0, 50.0, 80.0])  # zero-shot: every run's row 0
    assert matrix[3] == pytest.approx([60 + ALPHA_SHIFT, 80 + ALPHA_SHIFT, 90 + ALPHA_SHIFT])
    scores = tables.mtil_scores(alpha, datasets)  # the stored ones, over seeds
    transfer, avg, last = (scores[n] for n in ("mtil_transfer", "mtil_avg", "mtil_last"))
    assert transfer[0][0] is None
    assert transfer[0][1:] == pytest.approx([40 + ALPHA_SHIFT, 65 + ALPHA_SHIFT])
    assert transfer[1] == pytest.approx(52.5 + ALPHA_SHIFT)
    assert avg[0] == pytest.approx([220 / 3 + ALPHA_SHIFT, 70 + ALPHA_SHIFT,
                                    220 / 3 + ALPHA_SHIFT])
    assert avg[1] == pytest.approx(650 / 9 + ALPHA_SHIFT)
    assert last == (pytest.approx([63.5, 83.5, 93.5]), pytest.approx(230 / 3 + ALPHA_SHIFT))
    zero = tables.zero_shot_scores(matrix)
    assert zero["mtil_transfer"] == ([None, 50.0, 80.0], pytest.approx(65.0))
    assert zero["mtil_avg"] == zero["mtil_last"] == ([20.0, 50.0, 80.0], pytest.approx(50.0))
    # one run: its own matrix, no averaging
    one = alpha[alpha["seed"] == 1]
    assert tables.mtil_matrix(one)[1][1] == pytest.approx([96.0, 46.0, 76.0])


def test_the_breakdown_is_zscl_table_1(runs):
    alpha = runs[runs["group"] == "alpha"]
    datasets, matrix = tables.mtil_matrix(alpha)
    table = tables.mtil_breakdown(
        datasets, {"zero-shot": tables.zero_shot_scores(matrix),
                   "alpha": tables.mtil_scores(alpha, datasets)}, REPORTED[:2])
    assert list(table.columns) == ["metric", "model", "d1", "d2", "d3", "mean"]
    assert table["metric"].nunique() == 3  # Transfer, Avg, Last, each a block of four lines
    assert table["model"].tolist()[:4] == ["zero-shot", "alpha",
                                           "zero-shot (reported, ViT-B-16@openai)",
                                           "ZSCL (reported, ViT-B-16@openai)"]
    last = table.iloc[8:12].set_index("model")
    assert last.loc["zero-shot", ["d1", "d2", "d3", "mean"]].tolist() == [20.0, 50.0, 80.0, 50.0]
    assert last.loc["alpha", ["d1", "d2", "d3", "mean"]].tolist() == [63.5, 83.5, 93.5, 80.2]
    reported = last.loc["ZSCL (reported, ViT-B-16@openai)"]
    assert reported["mean"] == 83.6 and reported[["d1", "d2", "d3"]].isna().all()
    assert pd.isna(table.iloc[1]["d1"])  # no Transfer on the first dataset


def test_the_heatmap_draws_the_matrix_with_the_zero_shot_row_on_top(runs):
    datasets, matrix = tables.mtil_matrix(runs[runs["group"] == "beta"])
    fig = figures.dataset_heatmap(datasets, matrix, "beta", seeds=2)
    heat = fig.data[0]
    assert list(heat.x) == DATASETS
    assert list(heat.y) == ["zero-shot", "after d1", "after d2", "after d3"]
    assert heat.z[3] == pytest.approx((50.0, 70.0, 80.0))
    assert heat.text[1][0] == "80.0"
    assert len(fig.layout.shapes) == 3  # each dataset right after its own step, outlined
    assert fig.layout.coloraxis.cmin == 0 and fig.layout.coloraxis.cmax == 100
    assert "mean over 2 seeds" in fig.layout.title.text


def test_a_multi_dataset_board_shows_transfer_avg_last_and_ranks_by_avg(runs):
    population = tables.context(runs, MTIL)
    assert tables.protocol_of(population) == MULTI_DATASET
    offered = [c.name for c in tables.board_columns(population, [])]
    assert {"mtil_transfer", "mtil_avg", "mtil_last", "trainable_percent"} <= set(offered)
    assert not {"balanced", "target_gain", "control_change", "final_accuracy"} & set(offered)
    assert tables.default_columns(MULTI_DATASET)[:3] == ("mtil_transfer", "mtil_avg",
                                                         "mtil_last")
    assert tables.default_rank(MULTI_DATASET) == "mtil_avg"
    board = tables.leaderboard(runs, MTIL, tables.default_rank(MULTI_DATASET)).set_index("group")
    assert board.index.tolist() == ["alpha", "beta", tables.ZERO_SHOT]  # by Avg: 75.7, 62.2, 50
    assert board.loc["alpha", "mtil_avg"] == pytest.approx(650 / 9 + ALPHA_SHIFT)
    assert board.loc["beta", "mtil_last"] == pytest.approx(230 / 3 - 10)
    zero = board.loc[tables.ZERO_SHOT]  # the zero-shot model's numbers: the matrix's row 0
    assert (zero["mtil_transfer"], zero["mtil_avg"], zero["mtil_last"]) == (
        pytest.approx(65.0), pytest.approx(50.0), pytest.approx(50.0))
    # a class-incremental board does not offer MTIL's columns
    other = tables.context(runs, tables.Filters(scenario="syn-4shot"))
    assert tables.protocol_of(other) is None
    names = [c.name for c in tables.board_columns(other, tables.control_names(other))]
    assert "balanced" in names and not {"mtil_transfer", "mtil_avg", "mtil_last"} & set(names)
    assert tables.default_rank(None) == "balanced"


def test_reported_rows_are_marked_and_not_ranked_by_default(runs):
    rank = "mtil_avg"
    board = tables.leaderboard(runs, MTIL, rank, published=REPORTED)
    groups = board["group"].tolist()
    # measured rows first, ranked; then the scenario's reported rows by Avg, unnumbered
    assert groups == ["alpha", "beta", tables.ZERO_SHOT, "Other (reported)", "ZSCL (reported)",
                      "zero-shot (reported)"]  # not "elsewhere": another scenario's
    reported = board[board["reported"]]
    assert reported["rank"].isna().all() and board["rank"].dropna().tolist() == [1, 2]
    assert reported["source"].iloc[0] == "Someone et al. 2024, Table 1; https://example.org/paper"
    assert (reported["preset"] == "reported · ViT-B-16@openai").all()
    cols = tables.metric_columns([])
    assert tables.best_values(board, cols)["mtil_avg"] == pytest.approx(650 / 9 + ALPHA_SHIFT)
    shown = tables.styled(board, cols).to_html()
    assert ">reported<" in shown and "reported · ViT-B-16@openai, reference" in shown
    assert tables.REPORTED_TINT.split(": ")[1] in shown
    # ticked: placed and numbered with the methods; the reported zero-shot stays a reference
    ranked = tables.leaderboard(runs, MTIL, rank, published=REPORTED, rank_published=True)
    assert ranked["group"].tolist() == ["Other (reported)", "alpha", "ZSCL (reported)",
                                        "zero-shot (reported)", "beta", tables.ZERO_SHOT]
    assert [None if pd.isna(r) else r for r in ranked["rank"]] == [1, 2, 3, None, 4, None]
    assert tables.best_values(ranked, cols)["mtil_avg"] == 90.0  # a reported row can win now
    # without published numbers the board keeps its columns (every other one is a metric)
    assert not set(tables.REPORTED_COLUMNS) & set(tables.leaderboard(runs, MTIL, rank).columns)
    csv = tables.export_csv(board, []).decode()
    assert "reported" in csv.splitlines()[0] and "ZSCL" in csv


def test_the_app_draws_the_matrix_page_and_the_reported_rows(store_path, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from clbench.cli.app import app_script
    from clbench.leaderboard_app.app import MATRIX_PAGE, PAGES

    mine = tmp_path / "mine.yaml"
    mine.write_text("published:\n  - {method: ZSCL, paper: Someone et al. 2024, table: Table 1,"
                    " backbone: ViT-B-16 openai, scenario: syn-mtil, source: https://example.org,"
                    " metrics: {mtil_transfer: 68.1, mtil_avg: 75.4, mtil_last: 83.6}}\n")
    monkeypatch.setenv("CLBENCH_DB", str(store_path))
    monkeypatch.setenv("CLBENCH_PUBLISHED", str(mine))
    at = AppTest.from_file(str(app_script()), default_timeout=60)
    at.query_params.update({"scenario": SCENARIO})
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.sidebar.radio(key="page").options == [*PAGES, MATRIX_PAGE]
    assert at.sidebar.selectbox(key="rank").value == "mtil_avg"
    assert at.multiselect(key="columns-multi-dataset").value[:3] == [
        "mtil_transfer", "mtil_avg", "mtil_last"]
    assert any("1.2 M-parameter CLIP" in i.value for i in at.info)  # the proxy's caveat
    board = at.dataframe[0].value
    assert board["group"].tolist() == ["alpha", "beta", tables.ZERO_SHOT, "ZSCL (reported)"]
    assert board["rank"].iloc[3] is pd.NA
    config = json.loads(at.dataframe[0].proto.columns)
    assert "source" in config
    at.checkbox(key="rank_reported").check().run()
    ranked = at.dataframe[0].value.set_index("group")["rank"]
    assert ranked.dropna().tolist() == [1, 2, 3] and ranked.index[1] == "ZSCL (reported)"
    at.sidebar.radio(key="page").set_value(MATRIX_PAGE).run()
    assert not at.exception, at.exception
    assert at.header[0].value == MATRIX_PAGE
    assert at.selectbox(key="matrix_of").value == "preset:alpha"
    assert len(at.get("plotly_chart")) == 1
    breakdown = at.dataframe[0].value.set_index(["metric", "model"])
    assert breakdown.loc[(breakdown.index[0][0], "alpha"), "d3"] == 65 + ALPHA_SHIFT
    assert "ZSCL (reported, ViT-B-16@openai)" in breakdown.index.get_level_values("model")


@pytest.mark.slow
def test_every_page_draws_a_multi_dataset_scenario(store_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from clbench.cli.app import app_script

    monkeypatch.setenv("CLBENCH_DB", str(store_path))
    monkeypatch.delenv("CLBENCH_PUBLISHED", raising=False)
    at = AppTest.from_file(str(app_script()), default_timeout=60)
    at.query_params.update({"scenario": SCENARIO})
    at.run()
    for page in at.sidebar.radio(key="page").options:
        at.sidebar.radio(key="page").set_value(page).run()
        assert not at.exception and not at.error, (page, at.exception)
    at.sidebar.radio(key="page").set_value("Trade-off").run()
    assert "no target or control sets" in at.info[0].value


def test_the_app_reads_published_files_from_its_arguments_or_the_environment(monkeypatch):
    from clbench.leaderboard_app.app import published_arguments

    monkeypatch.setenv("CLBENCH_PUBLISHED", os.pathsep.join(["a.yaml", "b.yaml"]))
    assert published_arguments(["--db", "x"]) == ["a.yaml", "b.yaml"]
    assert published_arguments(["--published", "c.yaml", "--published", "d.yaml"]) == [
        "c.yaml", "d.yaml"]
