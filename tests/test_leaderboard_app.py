"""The leaderboard's Streamlit wiring (AppTest, no browser) and the `clbench app` command."""

from __future__ import annotations

import pytest
from leaderboard_seed import old_schema_store, seed_store
from leaderboard_synthetic import Spec, add_run
from streamlit.testing.v1 import AppTest

from clbench.cli.app import app_script, streamlit_command
from clbench.cli.main import main
from clbench.leaderboard_app.app import PAGES
from clbench.leaderboard_app.data import load, open_store
from clbench.leaderboard_app.tables import ZERO_SHOT
from clbench.store import Store

APP = str(app_script())


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    path = tmp_path_factory.mktemp("app") / "results.db"
    seed_store(path)
    return path


def start(db, monkeypatch, **query: str) -> AppTest:
    monkeypatch.setenv("CLBENCH_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)  # what a shared link would carry
    at.run()
    assert not at.exception, at.exception
    return at


def completed_ids(db) -> dict[str, str]:
    """A run id per preset of the store's 4-shot scenario (the seed-0 run)."""
    store = open_store(str(db))
    runs = load(store).runs
    store.close()
    first = runs[(runs["seed"] == 0) & (runs["scenario"] == "syn-4shot")]
    return dict(zip(first["group"], first["id"]))


def board_groups(at: AppTest) -> list[str]:
    return at.dataframe[0].value["group"].tolist()


def test_every_page_renders(seeded, monkeypatch):
    at = start(seeded, monkeypatch)
    assert at.sidebar.radio(key="page").options == list(PAGES)
    counts = {}
    for page in PAGES:
        at.sidebar.radio(key="page").set_value(page).run()
        assert not at.exception, (page, at.exception)
        assert not at.error, (page, [e.value for e in at.error])
        assert at.header[0].value == page
        counts[page] = len(at.get("plotly_chart"))
    # the trade-off beside the table; small multiples in one figure; the preset's curves and
    # its matrix; the run's curves
    assert counts == {"Leaderboard": 1, "Forgetting curves": 1, "Per-session comparison": 1,
                      "Trade-off": 1, "Presets": 2, "Runs": 1}
    tables_before = len(at.dataframe)  # settings, provenance, sessions
    ids = completed_ids(seeded)
    at.multiselect(key="compare_runs").set_value([ids["alpha (lr=0.0001)"], ids["beta"]]).run()
    assert not at.exception
    assert len(at.dataframe) == tables_before + 1
    compared = at.dataframe[-1].value
    assert all(" · seed " in c for c in compared.columns[1:])  # named by preset and seed


def test_presets_page_compares_presets(seeded, monkeypatch):
    at = start(seeded, monkeypatch, page="Presets", preset="beta")
    assert at.selectbox(key="preset").value == "beta"
    at.multiselect(key="compare").set_value(["alpha (lr=0.0001)"]).run()
    assert not at.exception
    side = at.dataframe[0].value
    assert list(side.columns) == ["beta", "alpha (lr=0.0001)", ZERO_SHOT]
    runs = at.dataframe[1].value
    assert sorted(set(runs["preset"])) == ["alpha (lr=0.0001)", "beta"] and len(runs) == 6


@pytest.mark.slow
def test_filters_change_the_row_count(seeded, monkeypatch):
    at = start(seeded, monkeypatch)
    # alpha at lr 1e-3 has one seed of the three its scenario asks for: hidden, and said so
    assert sorted(board_groups(at)) == sorted(["alpha (lr=0.0001)", "beta", ZERO_SHOT])
    assert "alpha (lr=0.001)" in at.warning[0].value
    assert "2 failed, 1 running runs are never counted" in at.caption[0].value
    at.button(key="show_few").click().run()  # one click shows them, marked
    assert sorted(board_groups(at)) == sorted(["alpha (lr=0.0001)", "alpha (lr=0.001)", "beta",
                                               ZERO_SHOT])
    assert at.sidebar.checkbox(key="few").value
    at.sidebar.multiselect(key="strategies").set_value(["beta"]).run()
    assert sorted(board_groups(at)) == ["beta", ZERO_SHOT]
    at.sidebar.multiselect(key="strategies").set_value([]).run()
    at.sidebar.radio(key="commit").set_value("dirty").run()
    assert sorted(board_groups(at)) == ["beta", ZERO_SHOT]
    at.sidebar.radio(key="commit").set_value("any").run()
    at.sidebar.selectbox(key="scenario").set_value("syn-8shot").run()
    # alone in its scenario, alpha needs no preset label there
    assert sorted(board_groups(at)) == ["alpha", ZERO_SHOT]


def test_rank_by_reorders(seeded, monkeypatch):
    at = start(seeded, monkeypatch)
    # the balanced score: beta gains 20 target points but loses 30 on each control
    assert board_groups(at) == ["alpha (lr=0.0001)", ZERO_SHOT, "beta"]
    at.sidebar.selectbox(key="rank").set_value("forgetting").run()
    assert board_groups(at) == [ZERO_SHOT, "beta", "alpha (lr=0.0001)"]  # least first


@pytest.mark.slow
def test_state_lives_in_the_url(seeded, monkeypatch):
    """A link opens the page, filters and ranking it names; leaving a page keeps its choices."""
    at = start(seeded, monkeypatch, page="Trade-off", rank="forgetting", few="1",
               strategies="beta")
    assert at.header[0].value == "Trade-off"
    assert at.sidebar.selectbox(key="rank").value == "forgetting"
    assert at.sidebar.checkbox(key="few").value
    assert at.sidebar.multiselect(key="strategies").value == ["beta"]
    at.sidebar.radio(key="page").set_value("Leaderboard").run()
    assert at.query_params["page"] == "Leaderboard" and at.query_params["rank"] == "forgetting"
    at.multiselect(key="columns").set_value(["balanced", "forgetting"]).run()
    at.sidebar.radio(key="page").set_value("Runs").run()
    at.sidebar.radio(key="page").set_value("Leaderboard").run()
    assert at.multiselect(key="columns").value == ["balanced", "forgetting"]
    assert at.query_params["columns"] == ["balanced", "forgetting"]
    # a hand-edited link with unknown values falls back to the defaults, without an error
    broken = start(seeded, monkeypatch, page="Nowhere", rank="nothing", top="0")
    assert broken.header[0].value == "Leaderboard"
    assert broken.sidebar.selectbox(key="rank").value == "balanced"


def test_missing_database_page(tmp_path, monkeypatch):
    at = start(tmp_path / "none.db", monkeypatch)
    assert "No results database" in at.error[0].value
    assert "clbench run" in at.code[0].value
    assert not (tmp_path / "none.db").exists()


def test_empty_and_failed_only_database_pages(tmp_path, monkeypatch):
    path = tmp_path / "empty.db"
    Store(f"sqlite:///{path}").close()
    at = start(path, monkeypatch)
    assert "No completed runs yet" in at.error[0].value
    assert "clbench run --strategy fft" in at.code[0].value
    failed_only = tmp_path / "failed.db"  # a new file: the app caches a store's runs for 30 s
    with Store(f"sqlite:///{failed_only}") as store:
        add_run(store, Spec("alpha", gain=0.5, drop=0.1), 0, status="failed")
    at = start(failed_only, monkeypatch)
    assert "1 failed; those are never counted" in at.error[0].value


def test_old_schema_page(tmp_path, monkeypatch):
    path = old_schema_store(tmp_path / "old.db")
    at = start(path, monkeypatch)
    assert "another schema" in at.error[0].value and "older than" in at.error[0].value


def test_unreachable_url_page(monkeypatch):
    at = start("postgresql+psycopg2://nobody@127.0.0.1:1/nowhere", monkeypatch)
    assert "Cannot open the results database" in at.error[0].value


def test_app_command_line(tmp_path):
    import argparse

    args = argparse.Namespace(db=str(tmp_path / "r.db"), port=8765, address=None)
    command = streamlit_command(args)
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4] == APP
    assert command[command.index("--server.port") + 1] == "8765"
    assert command[-2:] == ["--db", f"sqlite:///{tmp_path / 'r.db'}"]


def test_app_without_streamlit_says_what_to_install(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "streamlit" else real(name, *a))
    assert main(["app"]) == 2
    assert 'pip install "clbench[app]"' in capsys.readouterr().err


def test_bad_port_is_a_user_error(capsys):
    assert main(["app", "--port", "0"]) == 2
    assert "--port must be between" in capsys.readouterr().err


@pytest.mark.spawns
def test_stopping_clbench_app_stops_the_server(tmp_path):
    """SIGTERM to `clbench app` closes the port and leaves no process behind (the server is
    the command's own process, not an orphaned child)."""
    import signal
    import socket
    import time

    import psutil
    from app_server import free_port, start_app, wait_healthy

    port = free_port()
    proc = start_app(tmp_path / "r.db", port)
    try:
        wait_healthy(port, proc)
        family = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, "the port still answers"
        time.sleep(0.5)
        assert not [p for p in family if psutil.pid_exists(p)
                    and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    finally:
        if proc.poll() is None:
            proc.kill()
