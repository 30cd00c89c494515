"""The leaderboard's Streamlit wiring (AppTest, no browser) and the `clbench app` command."""

from __future__ import annotations

import pytest
from leaderboard_seed import old_schema_store, seed_store
from leaderboard_synthetic import Spec, add_run
from streamlit.testing.v1 import AppTest

from clbench.cli import main
from clbench.cli_app import app_script, streamlit_command
from clbench.leaderboard_app.app import PAGES
from clbench.leaderboard_app.tables import ZERO_SHOT
from clbench.store import Store

APP = str(app_script())


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    path = tmp_path_factory.mktemp("app") / "results.db"
    seed_store(path)
    return path


def start(db, monkeypatch) -> AppTest:
    monkeypatch.setenv("CLBENCH_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


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
    # three eval sets -> three curves; bars + heatmap; one trade-off plot
    assert counts == {"Leaderboard": 0, "Forgetting curves": 3, "Per-session comparison": 2,
                      "Trade-off": 1, "Run detail and compare": 0}
    at.multiselect(key="compare_runs").set_value(at.multiselect(key="compare_runs").options[:2])
    at.run()
    assert not at.exception
    assert len(at.dataframe) == 2  # sessions table and the comparison


def test_filters_change_the_row_count(seeded, monkeypatch):
    at = start(seeded, monkeypatch)
    assert sorted(board_groups(at)) == sorted(["alpha (lr=0.0001)", "alpha (lr=0.001)", "beta",
                                               ZERO_SHOT])
    assert "2 failed, 1 running runs are never counted" in at.caption[0].value
    at.sidebar.multiselect(key="strategies").set_value(["beta"]).run()
    assert sorted(board_groups(at)) == ["beta", ZERO_SHOT]
    at.sidebar.multiselect(key="strategies").set_value([]).run()
    at.sidebar.radio(key="commit").set_value("dirty").run()
    assert sorted(board_groups(at)) == ["beta", ZERO_SHOT]
    at.sidebar.radio(key="commit").set_value("any").run()
    at.sidebar.selectbox(key="scenario").set_value("syn-8shot").run()
    assert sorted(board_groups(at)) == ["alpha (lr=0.0001)", ZERO_SHOT]


def test_rank_by_reorders(seeded, monkeypatch):
    at = start(seeded, monkeypatch)
    assert board_groups(at)[0] == "alpha (lr=0.0001)"  # highest final accuracy
    at.selectbox(key="rank_by").set_value("forgetting").run()
    assert board_groups(at)[:2] == [ZERO_SHOT, "beta"]  # lowest forgetting first
    at.number_input(key="min_seeds").set_value(2).run()
    assert "alpha (lr=0.001)" not in board_groups(at) and len(board_groups(at)) == 3


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
